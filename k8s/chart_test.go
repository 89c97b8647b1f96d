package k8s_test

// The chart offline: rendered with Helm's SDK (k8s/chart) for every value
// set, every document decoded strictly into its typed Kubernetes struct, the
// operational rules checked on the objects, the rendered service configs
// loaded by the real gateway and snapshotter binaries (--check-config), the
// edge's nginx.conf tested by the local nginx, and helm lint.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/liqstream/liqstream/k8s/chart"
)

// chartCase is one value set the chart is rendered with.
type chartCase struct {
	name  string
	files []string // under the chart dir
	set   map[string]any
	// canaryWeight is the canary's expected percent, 0 without a canary;
	// canaryWS its expected ws_enabled.
	canaryWeight int
	canaryWS     bool
	// balance is the expected upstream balancing directive.
	balance string
}

// chartCases are the shipped value sets, and each again with every optional
// template on (so Ingress, HTTPRoute, ServiceMonitor, the canary and the
// edge exporter are decoded and checked too).
func chartCases() []chartCase {
	base := []chartCase{
		{name: "default", balance: "ip_hash;"},
		{name: "staging", files: []string{"values-staging.yaml"}, canaryWeight: 10, canaryWS: true, balance: "ip_hash;"},
		{name: "production", files: []string{"values-production.yaml"}, balance: "hash $remote_addr consistent;"},
	}
	all := slices.Clone(base)
	for _, c := range base {
		// optionalOn's canary: 37 %, ws_enabled false.
		all = append(all, chartCase{name: c.name + "+optional", files: c.files, set: optionalOn(), canaryWeight: 37, balance: c.balance})
	}
	return all
}

// optionalOn enables every optional template.
func optionalOn() map[string]any {
	return map[string]any{
		"ingress":        map[string]any{"enabled": true, "className": "nginx"},
		"httpRoute":      map[string]any{"enabled": true, "parentRefs": []any{map[string]any{"name": "public", "namespace": "gateway-system"}}},
		"serviceMonitor": map[string]any{"enabled": true},
		"canary":         map[string]any{"enabled": true, "weight": 37, "config": map[string]any{"ws_enabled": false}},
		"edge":           map[string]any{"metrics": map[string]any{"enabled": true}},
		"networkPolicy": map[string]any{"metricsScraper": map[string]any{
			"podSelector": map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/name": "prometheus"}},
		}},
	}
}

// objects is one rendering, decoded.
type objects struct {
	manifests    []chart.Manifest
	deployments  []*appsv1.Deployment
	statefulSets []*appsv1.StatefulSet
	services     []*corev1.Service
	configMaps   []*corev1.ConfigMap
	secrets      []*corev1.Secret
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
	pdbs         []*policyv1.PodDisruptionBudget
	netpols      []*networkingv1.NetworkPolicy
	ingresses    []*networkingv1.Ingress
	httpRoutes   []*gatewayv1.HTTPRoute
	monitors     []*monitoringv1.ServiceMonitor
}

// decodeStrict decodes one document into the typed struct of its
// apiVersion and kind, rejecting unknown fields; an unknown kind is an error.
func decodeStrict(m chart.Manifest, into *objects) error {
	var obj any
	switch m.APIVersion + " " + m.Kind {
	case "apps/v1 Deployment":
		o := &appsv1.Deployment{}
		into.deployments, obj = append(into.deployments, o), o
	case "apps/v1 StatefulSet":
		o := &appsv1.StatefulSet{}
		into.statefulSets, obj = append(into.statefulSets, o), o
	case "v1 Service":
		o := &corev1.Service{}
		into.services, obj = append(into.services, o), o
	case "v1 ConfigMap":
		o := &corev1.ConfigMap{}
		into.configMaps, obj = append(into.configMaps, o), o
	case "v1 Secret":
		o := &corev1.Secret{}
		into.secrets, obj = append(into.secrets, o), o
	case "autoscaling/v2 HorizontalPodAutoscaler":
		o := &autoscalingv2.HorizontalPodAutoscaler{}
		into.hpas, obj = append(into.hpas, o), o
	case "policy/v1 PodDisruptionBudget":
		o := &policyv1.PodDisruptionBudget{}
		into.pdbs, obj = append(into.pdbs, o), o
	case "networking.k8s.io/v1 NetworkPolicy":
		o := &networkingv1.NetworkPolicy{}
		into.netpols, obj = append(into.netpols, o), o
	case "networking.k8s.io/v1 Ingress":
		o := &networkingv1.Ingress{}
		into.ingresses, obj = append(into.ingresses, o), o
	case "gateway.networking.k8s.io/v1 HTTPRoute":
		o := &gatewayv1.HTTPRoute{}
		into.httpRoutes, obj = append(into.httpRoutes, o), o
	case "monitoring.coreos.com/v1 ServiceMonitor":
		o := &monitoringv1.ServiceMonitor{}
		into.monitors, obj = append(into.monitors, o), o
	default:
		return fmt.Errorf("%s: unknown kind %s %s (add it to decodeStrict with its typed struct)", m.Source, m.APIVersion, m.Kind)
	}
	if err := yaml.UnmarshalStrict(m.YAML, obj); err != nil {
		return fmt.Errorf("%s %s %s: %w", m.Source, m.Kind, m.Name, err)
	}
	return nil
}

// renderCase renders and decodes c; any error fails the test.
func renderCase(t *testing.T, c chartCase) *objects {
	t.Helper()
	paths := make([]string, len(c.files))
	for i, f := range c.files {
		paths[i] = filepath.Join(chartDir, f)
	}
	ms, err := chart.Render(chartDir, release, namespace, paths, c.set)
	if err != nil {
		t.Fatalf("render %s: %v", c.name, err)
	}
	if len(ms) == 0 {
		t.Fatalf("render %s: no documents", c.name)
	}
	o := &objects{manifests: ms}
	for _, m := range ms {
		if err := decodeStrict(m, o); err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return o
}

// podTemplate is a workload's pod template with its workload's identity.
type podTemplate struct {
	kind, name string
	tmpl       *corev1.PodTemplateSpec
}

func (o *objects) podTemplates() []podTemplate {
	var out []podTemplate
	for _, d := range o.deployments {
		out = append(out, podTemplate{"Deployment", d.Name, &d.Spec.Template})
	}
	for _, s := range o.statefulSets {
		out = append(out, podTemplate{"StatefulSet", s.Name, &s.Spec.Template})
	}
	return out
}

// matching returns the names of the workloads whose pod labels sel selects.
func (o *objects) matching(t *testing.T, sel *metav1.LabelSelector) []string {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("selector %v: %v", sel, err)
	}
	var names []string
	if s.Empty() {
		return nil // an empty selector here would be a chart bug; report none
	}
	for _, p := range o.podTemplates() {
		if s.Matches(labels.Set(p.tmpl.Labels)) {
			names = append(names, p.name)
		}
	}
	slices.Sort(names)
	return names
}

// named is the object called name among xs, or nil.
func named[T interface{ GetName() string }](xs []T, name string) T {
	var zero T
	for _, x := range xs {
		if x.GetName() == name {
			return x
		}
	}
	return zero
}

func (o *objects) deployment(name string) *appsv1.Deployment { return named(o.deployments, name) }

func (o *objects) statefulSet(name string) *appsv1.StatefulSet { return named(o.statefulSets, name) }

func (o *objects) configMap(name string) *corev1.ConfigMap { return named(o.configMaps, name) }

func (o *objects) secret(name string) *corev1.Secret { return named(o.secrets, name) }

// containerEnv is the environment the chart gives a container, resolved as
// the kubelet would: literal values, the pod name for fieldRefs, and keys
// of the Secrets the chart renders.
func (o *objects) containerEnv(t *testing.T, p podTemplate, container string) []string {
	t.Helper()
	var env []string
	for _, c := range p.tmpl.Spec.Containers {
		if c.Name != container {
			continue
		}
		for _, e := range c.Env {
			switch {
			case e.ValueFrom == nil:
				env = append(env, e.Name+"="+e.Value)
			case e.ValueFrom.FieldRef != nil:
				env = append(env, e.Name+"=pod-0")
			case e.ValueFrom.SecretKeyRef != nil:
				ref := e.ValueFrom.SecretKeyRef
				s := o.secret(ref.Name)
				if s == nil {
					t.Fatalf("%s %s: env %s reads Secret %s, which the chart does not render", p.kind, p.name, e.Name, ref.Name)
				}
				v, ok := s.StringData[ref.Key]
				if !ok {
					t.Fatalf("%s %s: env %s reads key %q of Secret %s, which has no such key", p.kind, p.name, e.Name, ref.Key, ref.Name)
				}
				env = append(env, e.Name+"="+v)
			default:
				t.Fatalf("%s %s: env %s: unsupported valueFrom", p.kind, p.name, e.Name)
			}
		}
	}
	return env
}

func (o *objects) service(name string) *corev1.Service { return named(o.services, name) }

// fileFromConfigMap returns the config file a container reads through
// LIQSTREAM_CONFIG: the ConfigMap volume mounted at that path's directory.
func (o *objects) fileFromConfigMap(t *testing.T, p podTemplate, container string) (cmName, key, content string) {
	t.Helper()
	var c *corev1.Container
	for i := range p.tmpl.Spec.Containers {
		if p.tmpl.Spec.Containers[i].Name == container {
			c = &p.tmpl.Spec.Containers[i]
		}
	}
	if c == nil {
		t.Fatalf("%s %s: no container %q", p.kind, p.name, container)
	}
	path := ""
	for _, e := range c.Env {
		if e.Name == "LIQSTREAM_CONFIG" {
			path = e.Value
		}
	}
	if path == "" {
		t.Fatalf("%s %s: container %s has no LIQSTREAM_CONFIG", p.kind, p.name, container)
	}
	dir, key := filepath.Dir(path), filepath.Base(path)
	for _, m := range c.VolumeMounts {
		if m.MountPath != dir {
			continue
		}
		if !m.ReadOnly {
			t.Errorf("%s %s: config volume %s is not mounted read-only", p.kind, p.name, m.Name)
		}
		for _, v := range p.tmpl.Spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil {
				cm := o.configMap(v.ConfigMap.Name)
				if cm == nil {
					t.Fatalf("%s %s: ConfigMap %s is not rendered", p.kind, p.name, v.ConfigMap.Name)
				}
				content, ok := cm.Data[key]
				if !ok {
					t.Fatalf("%s %s: ConfigMap %s has no key %s", p.kind, p.name, cm.Name, key)
				}
				return cm.Name, key, content
			}
		}
	}
	t.Fatalf("%s %s: nothing mounted at %s for LIQSTREAM_CONFIG=%s", p.kind, p.name, dir, path)
	return "", "", ""
}

// component is a pod template's app.kubernetes.io/component label.
func component(p podTemplate) string { return p.tmpl.Labels["app.kubernetes.io/component"] }

func TestChartObjects(t *testing.T) {
	for _, c := range chartCases() {
		t.Run(c.name, func(t *testing.T) {
			o := renderCase(t, c)
			t.Run("containers", func(t *testing.T) { checkContainers(t, o) })
			t.Run("gateway", func(t *testing.T) { checkGateways(t, o) })
			t.Run("hpa", func(t *testing.T) { checkHPA(t, o) })
			t.Run("pdb", func(t *testing.T) { checkPDBs(t, o) })
			t.Run("snapshotter", func(t *testing.T) { checkSnapshotter(t, o) })
			t.Run("redis", func(t *testing.T) { checkRedis(t, o) })
			t.Run("networkpolicy", func(t *testing.T) { checkNetworkPolicies(t, o) })
			t.Run("services", func(t *testing.T) { checkServices(t, o) })
			t.Run("edge", func(t *testing.T) { checkEdgeConfig(t, o, c) })
			t.Run("canary", func(t *testing.T) { checkCanary(t, o, c) })
			t.Run("routes", func(t *testing.T) { checkRoutes(t, o) })
		})
	}
}

// checkContainers: probes, resources and the security context of every container.
func checkContainers(t *testing.T, o *objects) {
	if len(o.podTemplates()) < 3 {
		t.Fatalf("only %d workloads rendered", len(o.podTemplates()))
	}
	for _, p := range o.podTemplates() {
		spec := p.tmpl.Spec
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("%s %s: the service account token is mounted; nothing here talks to the API", p.kind, p.name)
		}
		if psc := spec.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
			t.Errorf("%s %s: pod securityContext lacks runAsNonRoot", p.kind, p.name)
		}
		if len(spec.InitContainers) > 0 {
			t.Errorf("%s %s: init containers are not expected (and not checked)", p.kind, p.name)
		}
		for _, c := range spec.Containers {
			where := fmt.Sprintf("%s %s container %s", p.kind, p.name, c.Name)
			if c.ReadinessProbe == nil {
				t.Errorf("%s: no readinessProbe", where)
			}
			if c.LivenessProbe == nil {
				t.Errorf("%s: no livenessProbe", where)
			}
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, okReq := c.Resources.Requests[r]
				lim, okLim := c.Resources.Limits[r]
				if !okReq || !okLim {
					t.Errorf("%s: %s request and limit must both be set (got %v / %v)", where, r, c.Resources.Requests, c.Resources.Limits)
					continue
				}
				if req.Cmp(lim) > 0 {
					t.Errorf("%s: %s request %s above its limit %s", where, r, req.String(), lim.String())
				}
			}
			sc := c.SecurityContext
			if sc == nil {
				t.Errorf("%s: no securityContext", where)
				continue
			}
			if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
				t.Errorf("%s: runAsNonRoot is not true", where)
			}
			if sc.RunAsUser == nil || *sc.RunAsUser == 0 {
				t.Errorf("%s: runAsUser is unset or root", where)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: readOnlyRootFilesystem is not true", where)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: allowPrivilegeEscalation is not false", where)
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Errorf("%s: privileged", where)
			}
			if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s: capabilities must drop ALL and add none, got %+v", where, sc.Capabilities)
			}
			if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s: seccompProfile is not RuntimeDefault", where)
			}
			for _, port := range c.Ports {
				if port.ContainerPort < 1024 {
					t.Errorf("%s: port %d needs privileges a non-root process lacks", where, port.ContainerPort)
				}
			}
		}
	}
}

// checkGateways: grace period, preStop, rollout strategy, config wiring.
func checkGateways(t *testing.T, o *objects) {
	n := 0
	for _, p := range o.podTemplates() {
		if component(p) != "gateway" {
			continue
		}
		n++
		d := o.deployment(p.name)
		if d == nil {
			t.Fatalf("gateway %s is a %s, want a Deployment", p.name, p.kind)
		}
		if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate == nil ||
			d.Spec.Strategy.RollingUpdate.MaxUnavailable == nil || d.Spec.Strategy.RollingUpdate.MaxUnavailable.String() != "0" {
			t.Errorf("%s: want RollingUpdate with maxUnavailable 0, got %+v", d.Name, d.Spec.Strategy)
		}
		if d.Spec.MinReadySeconds <= 0 {
			t.Errorf("%s: minReadySeconds not set", d.Name)
		}
		_, _, file := o.fileFromConfigMap(t, p, "gateway")
		var cfg struct {
			DrainTimeout string `json:"drain_timeout"`
		}
		if err := yaml.Unmarshal([]byte(file), &cfg); err != nil {
			t.Fatalf("%s: config is not YAML: %v", d.Name, err)
		}
		drain := 10 * time.Second // the gateway's default
		if cfg.DrainTimeout != "" {
			var err error
			if drain, err = time.ParseDuration(cfg.DrainTimeout); err != nil {
				t.Fatalf("%s: drain_timeout %q: %v", d.Name, cfg.DrainTimeout, err)
			}
		}
		c := p.tmpl.Spec.Containers[0]
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
			t.Fatalf("%s: no preStop sleep action", d.Name)
		}
		if c.Lifecycle.PreStop.Exec != nil {
			t.Errorf("%s: preStop exec needs a shell the distroless image lacks", d.Name)
		}
		preStop := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		if preStop < time.Second {
			t.Errorf("%s: preStop sleep %s is too short for the edge to re-resolve", d.Name, preStop)
		}
		g := p.tmpl.Spec.TerminationGracePeriodSeconds
		if g == nil {
			t.Fatalf("%s: terminationGracePeriodSeconds unset (default 30s is not derived from drain_timeout)", d.Name)
		}
		if grace := time.Duration(*g) * time.Second; grace <= preStop+drain {
			t.Errorf("%s: terminationGracePeriodSeconds %s must exceed preStop %s + drain_timeout %s", d.Name, grace, preStop, drain)
		}
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
			t.Errorf("%s: readinessProbe must GET /readyz", d.Name)
		}
		if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
			t.Errorf("%s: livenessProbe must GET /healthz", d.Name)
		}
		instance := false
		for _, e := range c.Env {
			if e.Name == "LIQSTREAM_INSTANCE_ID" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
				instance = true
			}
		}
		if !instance {
			t.Errorf("%s: LIQSTREAM_INSTANCE_ID must come from the pod name", d.Name)
		}
		if p.tmpl.Annotations["checksum/config"] == "" {
			t.Errorf("%s: no checksum/config annotation: config changes would not roll the pods", d.Name)
		}
		if p.tmpl.Spec.Affinity == nil || p.tmpl.Spec.Affinity.PodAntiAffinity == nil ||
			len(p.tmpl.Spec.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 {
			t.Errorf("%s: no preferred podAntiAffinity", d.Name)
		}
		if len(p.tmpl.Spec.TopologySpreadConstraints) == 0 {
			t.Errorf("%s: no topologySpreadConstraints", d.Name)
		}
		for _, tsc := range p.tmpl.Spec.TopologySpreadConstraints {
			if got := o.matching(t, tsc.LabelSelector); !slices.Equal(got, []string{d.Name}) {
				t.Errorf("%s: topology spread selector matches %v", d.Name, got)
			}
		}
	}
	if n == 0 {
		t.Fatal("no gateway rendered")
	}
}

// checkHPA: the autoscaler drives the stable gateway Deployment on
// connections and CPU, up fast, down slow.
func checkHPA(t *testing.T, o *objects) {
	stable := o.deployment(release + "-gateway")
	if stable == nil {
		t.Fatalf("no Deployment %s-gateway", release)
	}
	if len(o.hpas) != 1 {
		t.Fatalf("want 1 HPA, got %d", len(o.hpas))
	}
	h := o.hpas[0]
	if ref := h.Spec.ScaleTargetRef; ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != stable.Name {
		t.Errorf("HPA targets %+v, want the Deployment %s", ref, stable.Name)
	}
	if stable.Spec.Replicas != nil {
		t.Errorf("%s sets replicas %d under an HPA: every upgrade would reset the HPA's count", stable.Name, *stable.Spec.Replicas)
	}
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
		t.Errorf("HPA min/max %v/%d", h.Spec.MinReplicas, h.Spec.MaxReplicas)
	}
	var conns, cpu bool
	for _, m := range h.Spec.Metrics {
		switch {
		case m.Type == autoscalingv2.PodsMetricSourceType && m.Pods != nil && m.Pods.Metric.Name == "ws_active_connections":
			if m.Pods.Target.Type != autoscalingv2.AverageValueMetricType || m.Pods.Target.AverageValue == nil || m.Pods.Target.AverageValue.Sign() <= 0 {
				t.Errorf("ws_active_connections target must be a positive AverageValue, got %+v", m.Pods.Target)
			}
			conns = true
		case m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU:
			if m.Resource.Target.Type != autoscalingv2.UtilizationMetricType || m.Resource.Target.AverageUtilization == nil {
				t.Errorf("cpu target must be averageUtilization, got %+v", m.Resource.Target)
			}
			cpu = true
		}
	}
	if !conns || !cpu {
		t.Errorf("HPA metrics: ws_active_connections Pods metric %v, cpu %v; want both", conns, cpu)
	}
	b := h.Spec.Behavior
	if b == nil || b.ScaleUp == nil || b.ScaleDown == nil {
		t.Fatal("HPA behavior scaleUp/scaleDown unset")
	}
	if b.ScaleUp.StabilizationWindowSeconds == nil || *b.ScaleUp.StabilizationWindowSeconds != 0 {
		t.Errorf("scaleUp stabilization must be 0, got %v", deref(b.ScaleUp.StabilizationWindowSeconds))
	}
	if b.ScaleDown.StabilizationWindowSeconds == nil || *b.ScaleDown.StabilizationWindowSeconds < 300 {
		t.Errorf("scaleDown stabilization must be at least 300 s, got %v", deref(b.ScaleDown.StabilizationWindowSeconds))
	}
	for _, p := range b.ScaleDown.Policies {
		if p.Type != autoscalingv2.PodsScalingPolicy || p.Value != 1 || p.PeriodSeconds < 120 {
			t.Errorf("scaleDown policy %+v: want one pod per several minutes", p)
		}
	}
	if len(b.ScaleDown.Policies) == 0 {
		t.Error("scaleDown has no policy")
	}
}

// checkPDBs: each PDB selects exactly the pods of the workload it is named after.
func checkPDBs(t *testing.T, o *objects) {
	want := []string{release + "-edge", release + "-gateway"}
	var got []string
	for _, p := range o.pdbs {
		got = append(got, p.Name)
		if m := o.matching(t, p.Spec.Selector); !slices.Equal(m, []string{p.Name}) {
			t.Errorf("PDB %s selects the pods of %v, want only %s", p.Name, m, p.Name)
		}
		if p.Spec.MaxUnavailable == nil && p.Spec.MinAvailable == nil {
			t.Errorf("PDB %s has neither maxUnavailable nor minAvailable", p.Name)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("PDBs %v, want %v", got, want)
	}
}

// checkSnapshotter: one replica (the only writer) with its volume.
func checkSnapshotter(t *testing.T, o *objects) {
	s := o.statefulSet(release + "-snapshotter")
	if s == nil {
		t.Fatalf("no StatefulSet %s-snapshotter", release)
	}
	if s.Spec.Replicas == nil || *s.Spec.Replicas != 1 {
		t.Errorf("snapshotter replicas %v, want exactly 1", s.Spec.Replicas)
	}
	if len(s.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("want one volumeClaimTemplate, got %d", len(s.Spec.VolumeClaimTemplates))
	}
	pvc := s.Spec.VolumeClaimTemplates[0]
	if q := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; q.Cmp(resource.MustParse("1Gi")) < 0 {
		t.Errorf("PVC %s requests %s", pvc.Name, q.String())
	}
	c := s.Spec.Template.Spec.Containers[0]
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.Name == pvc.Name && m.MountPath == "/data" && !m.ReadOnly {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("PVC %s is not mounted read-write at /data", pvc.Name)
	}
	if c.StartupProbe == nil {
		t.Error("snapshotter has no startupProbe (the first start seeds demo data)")
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Error("snapshotter readinessProbe must GET /readyz")
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Error("snapshotter livenessProbe must GET /healthz")
	}
	if o.service(s.Spec.ServiceName) == nil {
		t.Errorf("serviceName %q is not a rendered Service", s.Spec.ServiceName)
	}
	p := podTemplate{"StatefulSet", s.Name, &s.Spec.Template}
	_, _, file := o.fileFromConfigMap(t, p, "snapshotter")
	var cfg struct {
		DB string `json:"db"`
	}
	if err := yaml.Unmarshal([]byte(file), &cfg); err != nil || cfg.DB != "/data/liqstream.duckdb" {
		t.Errorf("snapshotter db %q (%v), want /data/liqstream.duckdb on the volume", cfg.DB, err)
	}
}

// checkRedis: the bundled Redis is one pinned, non-root replica; without it
// both services point at redis.url.
func checkRedis(t *testing.T, o *objects) {
	s := o.statefulSet(release + "-redis")
	// The URL may carry a password: it must never sit in a ConfigMap.
	for _, cm := range o.configMaps {
		for key, f := range cm.Data {
			if strings.Contains(f, "redis://") || strings.Contains(f, "rediss://") {
				t.Errorf("ConfigMap %s/%s holds a Redis URL; it belongs in a Secret", cm.Name, key)
			}
		}
	}
	var urls []string
	for _, p := range o.podTemplates() {
		comp := component(p)
		if comp != "gateway" && comp != "snapshotter" {
			continue
		}
		var found bool
		for _, kv := range o.containerEnv(t, p, comp) {
			if u, ok := strings.CutPrefix(kv, "LIQSTREAM_REDIS_URL="); ok {
				found = true
				urls = append(urls, u)
			}
		}
		if !found {
			t.Errorf("%s %s: no LIQSTREAM_REDIS_URL from the Redis Secret", p.kind, p.name)
		}
	}
	if len(urls) < 2 {
		t.Fatalf("the Redis URL reaches %d containers, want the gateways' and the snapshotter's", len(urls))
	}
	if s == nil {
		for _, u := range urls {
			if strings.Contains(u, release+"-redis.") {
				t.Errorf("Redis URL %s names the bundled Redis, which is not rendered", u)
			}
		}
		return
	}
	if s.Spec.Replicas == nil || *s.Spec.Replicas != 1 {
		t.Errorf("redis replicas %v, want 1", s.Spec.Replicas)
	}
	img := s.Spec.Template.Spec.Containers[0].Image
	if !regexp.MustCompile(`^redis:7\.\d+\.\d+-alpine$`).MatchString(img) {
		t.Errorf("redis image %s is not a pinned redis:7.x.y-alpine", img)
	}
	if u := s.Spec.Template.Spec.Containers[0].SecurityContext.RunAsUser; u == nil || *u != 999 {
		t.Errorf("redis must run as uid 999, got %v", u)
	}
	if len(s.Spec.VolumeClaimTemplates) != 0 {
		t.Error("redis has a PVC; frames are ephemeral")
	}
	for _, u := range urls {
		if want := fmt.Sprintf("redis://%s-redis.%s.svc.cluster.local:6379/0", release, namespace); u != want {
			t.Errorf("redis_url %s, want %s", u, want)
		}
	}
}

// checkNetworkPolicies: each policy selects the pods it is named after and
// admits exactly the intended peers.
func checkNetworkPolicies(t *testing.T, o *objects) {
	gateways := o.workloads("gateway")
	want := map[string]struct{ targets, from []string }{
		release + "-gateway":     {gateways, []string{release + "-edge"}},
		release + "-snapshotter": {[]string{release + "-snapshotter"}, gateways},
		release + "-edge":        {[]string{release + "-edge"}, nil}, // open to clients
	}
	if o.statefulSet(release+"-redis") != nil {
		want[release+"-redis"] = struct{ targets, from []string }{[]string{release + "-redis"}, sorted(append([]string{release + "-snapshotter"}, gateways...))}
	}
	if len(o.netpols) != len(want) {
		t.Errorf("%d NetworkPolicies, want %d", len(o.netpols), len(want))
	}
	for _, np := range o.netpols {
		w, ok := want[np.Name]
		if !ok {
			t.Errorf("unexpected NetworkPolicy %s", np.Name)
			continue
		}
		if got := o.matching(t, &np.Spec.PodSelector); !slices.Equal(got, w.targets) {
			t.Errorf("NetworkPolicy %s applies to %v, want %v", np.Name, got, w.targets)
		}
		if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			t.Errorf("NetworkPolicy %s does not restrict ingress", np.Name)
		}
		var from []string
		openRule := false
		for _, r := range np.Spec.Ingress {
			if len(r.From) == 0 {
				openRule = true
			}
			if len(r.Ports) == 0 {
				t.Errorf("NetworkPolicy %s: a rule opens every port", np.Name)
			}
			for _, peer := range r.From {
				if peer.IPBlock != nil {
					continue
				}
				if peer.NamespaceSelector != nil {
					continue // the metrics scraper, in its own namespace
				}
				if peer.PodSelector != nil {
					m := o.matching(t, peer.PodSelector)
					if len(m) == 0 && isMetricsPort(r.Ports) {
						continue // the scraper's pods are not ours
					}
					from = append(from, m...)
				}
			}
		}
		from = sorted(from)
		if w.from == nil {
			if !openRule {
				t.Errorf("NetworkPolicy %s: the edge must stay reachable by clients", np.Name)
			}
			continue
		}
		if openRule {
			t.Errorf("NetworkPolicy %s: a rule admits everyone", np.Name)
		}
		if !slices.Equal(from, w.from) {
			t.Errorf("NetworkPolicy %s admits pods of %v, want %v", np.Name, from, w.from)
		}
	}
}

func isMetricsPort(ports []networkingv1.NetworkPolicyPort) bool {
	for _, p := range ports {
		if p.Port != nil && slices.Contains([]int{8080, 8081, 9113}, p.Port.IntValue()) {
			return true
		}
	}
	return false
}

// workloads lists the workloads of a component.
func (o *objects) workloads(comp string) []string {
	var out []string
	for _, p := range o.podTemplates() {
		if component(p) == comp {
			out = append(out, p.name)
		}
	}
	return sorted(out)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// checkServices: every Service selects some pods on a port they have; the
// headless ones hide unready pods from the edge.
func checkServices(t *testing.T, o *objects) {
	for _, s := range o.services {
		if len(s.Spec.Selector) == 0 {
			t.Errorf("Service %s has no selector", s.Name)
			continue
		}
		m := o.matching(t, &metav1.LabelSelector{MatchLabels: s.Spec.Selector})
		if len(m) == 0 {
			t.Errorf("Service %s selects no pod template (%v)", s.Name, s.Spec.Selector)
			continue
		}
		for _, port := range s.Spec.Ports {
			if port.TargetPort.IntValue() != 0 {
				continue
			}
			for _, p := range o.podTemplates() {
				if !slices.Contains(m, p.name) {
					continue
				}
				found := false
				for _, c := range p.tmpl.Spec.Containers {
					for _, cp := range c.Ports {
						found = found || cp.Name == port.TargetPort.String()
					}
				}
				if !found {
					t.Errorf("Service %s: targetPort %s is no port of %s", s.Name, port.TargetPort.String(), p.name)
				}
			}
		}
		if strings.HasSuffix(s.Name, "-headless") {
			if s.Spec.ClusterIP != corev1.ClusterIPNone || s.Spec.PublishNotReadyAddresses {
				t.Errorf("Service %s: want clusterIP None and publishNotReadyAddresses false", s.Name)
			}
		}
	}
	for _, g := range o.workloads("gateway") {
		if s := o.service(g + "-headless"); s == nil {
			t.Errorf("gateway %s has no headless Service", g)
		} else if m := o.matching(t, &metav1.LabelSelector{MatchLabels: s.Spec.Selector}); !slices.Equal(m, []string{g}) {
			t.Errorf("headless Service %s selects %v, want only %s", s.Name, m, g)
		}
	}
	for _, sm := range o.monitors {
		n := 0
		for _, s := range o.services {
			sel, _ := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
			if sel.Matches(labels.Set(s.Labels)) {
				n++
				ok := false
				for _, p := range s.Spec.Ports {
					for _, e := range sm.Spec.Endpoints {
						ok = ok || p.Name == e.Port
					}
				}
				if !ok {
					t.Errorf("ServiceMonitor %s: Service %s has no port of its endpoints", sm.Name, s.Name)
				}
			}
		}
		if n != 1 {
			t.Errorf("ServiceMonitor %s selects %d Services, want 1 (a second would scrape every pod twice)", sm.Name, n)
		}
	}
}

// checkRoutes: Ingress and HTTPRoute lead to the edge Service's port.
func checkRoutes(t *testing.T, o *objects) {
	edge := o.service(release + "-edge")
	if edge == nil {
		t.Fatalf("no Service %s-edge", release)
	}
	for _, in := range o.ingresses {
		for _, r := range in.Spec.Rules {
			for _, p := range r.HTTP.Paths {
				if b := p.Backend.Service; b == nil || b.Name != edge.Name || (b.Port.Name != edge.Spec.Ports[0].Name && b.Port.Number != edge.Spec.Ports[0].Port) {
					t.Errorf("Ingress %s: backend %+v is not the edge Service", in.Name, p.Backend)
				}
			}
		}
	}
	for _, hr := range o.httpRoutes {
		for _, r := range hr.Spec.Rules {
			for _, b := range r.BackendRefs {
				if string(b.Name) != edge.Name || b.Port == nil || int32(*b.Port) != edge.Spec.Ports[0].Port {
					t.Errorf("HTTPRoute %s: backend %+v is not the edge Service port", hr.Name, b.BackendObjectReference)
				}
			}
		}
	}
}

// edgeConf returns the rendered nginx.conf.
func edgeConf(t *testing.T, o *objects) string {
	t.Helper()
	cm := o.configMap(release + "-edge")
	if cm == nil || cm.Data["nginx.conf"] == "" {
		t.Fatalf("no ConfigMap %s-edge with nginx.conf", release)
	}
	return cm.Data["nginx.conf"]
}

var (
	upstreamRE = regexp.MustCompile(`(?s)upstream (\w+) \{(.*?)\n\s*\}`)
	splitRE    = regexp.MustCompile(`(?s)split_clients "\$\{remote_addr\}" \$gateway_pool \{(.*?)\}`)
)

// checkEdgeConfig: upstreams resolve the headless Services, the balance
// method, and the canary split.
func checkEdgeConfig(t *testing.T, o *objects, c chartCase) {
	conf := edgeConf(t, o)
	ups := map[string]string{}
	for _, m := range upstreamRE.FindAllStringSubmatch(conf, -1) {
		ups[m[1]] = m[2]
	}
	canary := o.deployment(release + "-gateway-canary")
	wantUps := []string{"stable"}
	if canary != nil {
		wantUps = append(wantUps, "canary")
	}
	var got []string
	for k := range ups {
		got = append(got, k)
	}
	if !slices.Equal(sorted(got), sorted(wantUps)) {
		t.Fatalf("upstreams %v, want %v", got, wantUps)
	}
	for name, body := range ups {
		svc := release + "-gateway-headless"
		if name == "canary" {
			svc = release + "-gateway-canary-headless"
		}
		if o.service(svc) == nil {
			t.Errorf("upstream %s: Service %s not rendered", name, svc)
		}
		want := fmt.Sprintf("server %s.%s.svc.cluster.local:8080 resolve max_fails=0;", svc, namespace)
		if !strings.Contains(body, want) {
			t.Errorf("upstream %s lacks %q:\n%s", name, want, body)
		}
		if !strings.Contains(body, "zone "+name+" ") {
			t.Errorf("upstream %s has no zone (resolve needs one)", name)
		}
		if !strings.Contains(body, c.balance) {
			t.Errorf("upstream %s lacks %q:\n%s", name, c.balance, body)
		}
	}
	if !regexp.MustCompile(`(?m)^\s*resolver \S+ valid=\d+s;`).MatchString(conf) {
		t.Error("no resolver with valid= in nginx.conf")
	}
	for _, d := range []string{"proxy_set_header Upgrade $http_upgrade;", "proxy_set_header Connection $connection_upgrade;",
		"proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;", "proxy_read_timeout 3600s;", "proxy_buffer_size 32k;", "proxy_next_upstream "} {
		if !strings.Contains(conf, d) {
			t.Errorf("nginx.conf lacks %q", d)
		}
	}
	split := splitRE.FindStringSubmatch(conf)
	if canary == nil {
		if split != nil || strings.Contains(conf, "$gateway_pool") {
			t.Error("canary off, yet nginx.conf splits clients")
		}
		if !strings.Contains(conf, "proxy_pass http://stable;") {
			t.Error("canary off: want proxy_pass http://stable;")
		}
		return
	}
	if split == nil {
		t.Fatal("canary on, but no split_clients \"${remote_addr}\" $gateway_pool")
	}
	weight := c.canaryWeight
	if want := fmt.Sprintf("%d%% canary;", weight); !strings.Contains(split[1], want) {
		t.Errorf("split_clients lacks %q:\n%s", want, split[1])
	}
	if !strings.Contains(split[1], "* stable;") {
		t.Errorf("split_clients sends the rest nowhere:\n%s", split[1])
	}
	if !strings.Contains(conf, "proxy_pass http://$gateway_pool;") {
		t.Error("canary on: want proxy_pass http://$gateway_pool;")
	}
}

// checkCanary: the canary renders iff wanted, with canary.config merged
// over gateway.config (the WebSocket feature flag per release).
func checkCanary(t *testing.T, o *objects, c chartCase) {
	canary := o.deployment(release + "-gateway-canary")
	if (canary != nil) != (c.canaryWeight > 0) {
		t.Fatalf("canary Deployment rendered: %v; want %v", canary != nil, c.canaryWeight > 0)
	}
	if canary == nil {
		return
	}
	if o.service(release+"-gateway-canary-headless") == nil {
		t.Error("no headless Service for the canary")
	}
	stable := o.deployment(release + "-gateway")
	wsEnabled := func(d *appsv1.Deployment) bool {
		_, _, file := o.fileFromConfigMap(t, podTemplate{"Deployment", d.Name, &d.Spec.Template}, "gateway")
		var cfg struct {
			WSEnabled *bool `json:"ws_enabled"`
		}
		if err := yaml.Unmarshal([]byte(file), &cfg); err != nil || cfg.WSEnabled == nil {
			t.Fatalf("%s: ws_enabled unset in its config (%v)", d.Name, err)
		}
		return *cfg.WSEnabled
	}
	if !wsEnabled(stable) {
		t.Error("stable gateways have ws_enabled false")
	}
	if got := wsEnabled(canary); got != c.canaryWS {
		t.Errorf("canary ws_enabled %v, want %v (canary.config over gateway.config)", got, c.canaryWS)
	}
	if canary.Spec.Replicas == nil || *canary.Spec.Replicas < 1 {
		t.Errorf("canary replicas %v", canary.Spec.Replicas)
	}
	for _, h := range o.hpas {
		if h.Spec.ScaleTargetRef.Name == canary.Name {
			t.Error("the HPA scales the canary")
		}
	}
}

// TestChartLint: helm lint (the SDK's) of every shipped value set reports no
// error and no warning.
func TestChartLint(t *testing.T) {
	for _, c := range chartCases()[:3] {
		t.Run(c.name, func(t *testing.T) {
			var files []string
			for _, f := range c.files {
				files = append(files, filepath.Join(chartDir, f))
			}
			msgs, err := chart.Lint(chartDir, files)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				if strings.HasPrefix(m, "[ERROR]") || strings.HasPrefix(m, "[WARNING]") {
					t.Error(m)
				} else {
					t.Log(m)
				}
			}
		})
	}
	t.Run("can fail", func(t *testing.T) {
		// A value of the wrong type is a lint error (values.schema.json).
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		if err := os.WriteFile(bad, []byte("edge:\n  balance: round_robin\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		msgs, err := chart.Lint(chartDir, []string{bad})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(msgs, func(m string) bool { return strings.HasPrefix(m, "[ERROR]") && strings.Contains(m, "balance") }) {
			t.Errorf("lint of edge.balance round_robin: no error naming it in %q", msgs)
		}
	})
}

// TestChartFails: the chart's own checks stop a render with a clear message,
// returned as an error.
func TestChartFails(t *testing.T) {
	cases := []struct {
		name string
		set  map[string]any
		want []string
	}{
		{
			name: "external redis without url",
			set:  map[string]any{"redis": map[string]any{"bundled": false, "url": ""}},
			want: []string{"redis.url is required when redis.bundled is false"},
		},
		{
			name: "redis_url in a service config",
			set:  map[string]any{"gateway": map[string]any{"config": map[string]any{"redis_url": "redis://x:6379/0"}}},
			want: []string{"gateway.config.redis_url", "redis.existingSecret"},
		},
		{
			name: "grace period too low",
			set:  map[string]any{"gateway": map[string]any{"terminationGracePeriodSeconds": 12}},
			want: []string{"gateway.terminationGracePeriodSeconds is 12, too low", "drain_timeout (10s)", "= 20"},
		},
		{
			name: "grace period too low for the canary's drain_timeout",
			set: map[string]any{
				"gateway": map[string]any{"terminationGracePeriodSeconds": 25},
				"canary":  map[string]any{"enabled": true, "config": map[string]any{"drain_timeout": "30s"}},
			},
			want: []string{"gateway.terminationGracePeriodSeconds is 25, too low", "drain_timeout (30s)"},
		},
		{
			name: "drain_timeout not a duration",
			set:  map[string]any{"gateway": map[string]any{"config": map[string]any{"drain_timeout": "ten seconds"}}},
			want: []string{"drain_timeout"},
		},
		{
			name: "canary weight above 100",
			set:  map[string]any{"canary": map[string]any{"enabled": true, "weight": 150}},
			want: []string{"/canary/weight", "maximum"},
		},
		{
			name: "httpRoute without parentRefs",
			set:  map[string]any{"httpRoute": map[string]any{"enabled": true}},
			want: []string{"httpRoute.parentRefs"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := chart.Render(chartDir, release, namespace, nil, c.set)
			if err == nil {
				t.Fatal("rendered; want an error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	t.Run("a grace period that covers the budget is kept", func(t *testing.T) {
		o := renderCase(t, chartCase{name: "grace", set: map[string]any{"gateway": map[string]any{"terminationGracePeriodSeconds": 20}}})
		if g := o.deployment(release + "-gateway").Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g != 20 {
			t.Errorf("grace %v, want 20", g)
		}
	})
	t.Run("the grace period follows drain_timeout", func(t *testing.T) {
		o := renderCase(t, chartCase{name: "drain", set: map[string]any{"gateway": map[string]any{"config": map[string]any{"drain_timeout": "1m30s"}}}})
		// 5 s preStop + 90 s drain + 5 s HTTP shutdown + 10 s margin.
		if g := o.deployment(release + "-gateway").Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g != 110 {
			t.Errorf("grace %v, want 110", g)
		}
	})
}

// TestDecodeStrict: the decoding the checks rely on rejects what it must.
func TestDecodeStrict(t *testing.T) {
	var o objects
	err := decodeStrict(chart.Manifest{APIVersion: "apps/v1", Kind: "Deployment", Name: "x",
		YAML: []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replica: 3\n")}, &o)
	if err == nil || !strings.Contains(err.Error(), "replica") {
		t.Errorf("unknown field: got %v", err)
	}
	err = decodeStrict(chart.Manifest{APIVersion: "batch/v1", Kind: "CronJob", Name: "x", YAML: []byte("kind: CronJob\n")}, &o)
	if err == nil || !strings.Contains(err.Error(), "unknown kind") {
		t.Errorf("unknown kind: got %v", err)
	}
}

// serviceBinaries builds the gateway and the snapshotter the way `make build`
// does (workspace mode, the gateway without cgo) into dir.
func serviceBinaries(t *testing.T, dir string) (gateway, snapshotter string) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(root, "go.work")
	if _, err := os.Stat(work); err != nil {
		t.Fatalf("the repository's go.work: %v", err)
	}
	build := func(name string, cgo string) string {
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", out, ".")
		cmd.Dir = filepath.Join(root, "services", name)
		// This module is tested with GOWORK=off; the services build in the
		// repository's workspace, as everywhere else.
		cmd.Env = append(os.Environ(), "GOWORK="+work, "CGO_ENABLED="+cgo)
		start := time.Now()
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", name, err, b)
		}
		t.Logf("built %s in %s", name, time.Since(start).Round(time.Millisecond))
		return out
	}
	return build("gateway", "0"), build("snapshotter", "1")
}

// TestServiceConfigs: the config files the chart renders are accepted by
// the real services (--check-config loads them as the pods will, via
// LIQSTREAM_CONFIG, and validates every key).
func TestServiceConfigs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the services")
	}
	dir := t.TempDir()
	gw, snap := serviceBinaries(t, dir)
	bins := map[string]string{"gateway": gw, "snapshotter": snap}
	check := func(t *testing.T, bin, file string, env ...string) (string, error) {
		cmd := exec.Command(bin, "--check-config")
		// Only what the pod sets (env, with the config file's path here).
		cmd.Env = append(append([]string{"HOME=" + dir}, env...), "LIQSTREAM_CONFIG="+file)
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	for _, c := range chartCases() {
		t.Run(c.name, func(t *testing.T) {
			o := renderCase(t, c)
			n := 0
			for _, p := range o.podTemplates() {
				comp := component(p)
				bin, ok := bins[comp]
				if !ok {
					continue
				}
				n++
				cm, key, content := o.fileFromConfigMap(t, p, comp)
				file := filepath.Join(t.TempDir(), key)
				if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
				out, err := check(t, bin, file, o.containerEnv(t, p, comp)...)
				if err != nil || !strings.Contains(out, "config ok") {
					t.Errorf("%s rejects ConfigMap %s/%s: %v\n%s\n--- config:\n%s", comp, cm, key, err, out, content)
				}
			}
			if n < 2 {
				t.Errorf("checked %d service configs, want the gateway's and the snapshotter's at least", n)
			}
		})
	}
	t.Run("can fail", func(t *testing.T) {
		for name, bin := range bins {
			file := filepath.Join(t.TempDir(), "bad.yaml")
			if err := os.WriteFile(file, []byte("no_such_key: 1\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := check(t, bin, file); err == nil || !strings.Contains(out, "no_such_key") {
				t.Errorf("%s accepted an unknown key: %v\n%s", name, err, out)
			}
		}
	})
}

// nginxBin is the local nginx (Debian's, as deploy/local/fleet.sh uses).
func nginxBin(t *testing.T) (string, [3]int) {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
	}
	out, err := exec.Command(bin, "-v").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx is needed to test the edge config (apt-get install nginx): %v %s", err, out)
	}
	m := regexp.MustCompile(`nginx/(\d+)\.(\d+)\.(\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("nginx -v: no version in %q", out)
	}
	var v [3]int
	for i := range v {
		v[i], _ = strconv.Atoi(m[i+1])
	}
	return bin, v
}

// localNginxConf adapts a rendered nginx.conf to `nginx -t` on this machine
// with exactly these substitutions, each asserted to apply.
func localNginxConf(t *testing.T, o *objects, conf, prefix string, nginxVersion [3]int) string {
	t.Helper()
	replace := func(old, new string, want int) {
		t.Helper()
		if n := strings.Count(conf, old); n != want {
			t.Fatalf("substitution %q: found %d times, want %d", old, n, want)
		}
		conf = strings.ReplaceAll(conf, old, new)
	}
	var headless []string
	for _, s := range o.services {
		if strings.HasSuffix(s.Name, "-headless") {
			headless = append(headless, fmt.Sprintf("%s.%s.svc.cluster.local", s.Name, namespace))
		}
	}
	if len(headless) == 0 {
		t.Fatal("no headless Services")
	}
	// 1. The upstream "resolve" server parameter exists from nginx 1.27.3
	// on; an older local nginx does not know it.
	if slices.Compare(nginxVersion[:], []int{1, 27, 3}) < 0 {
		replace(":8080 resolve max_fails=0;", ":8080 max_fails=0;", len(headless))
	}
	// 2. Cluster-only hostnames do not resolve here (nginx resolves server
	// names at load): the resolver's and the headless Services' FQDNs.
	resolver := regexp.MustCompile(`(?m)^(\s*resolver )(\S+)`).FindStringSubmatch(conf)
	if resolver == nil {
		t.Fatal("no resolver directive")
	}
	replace(resolver[0], resolver[1]+"127.0.0.1", 1)
	for _, h := range headless {
		replace(" "+h+":8080", " 127.0.0.1:8080", 1)
	}
	// 3. Absolute paths (pid and temp paths under /tmp in the pod) into the
	// temp prefix. There is no include of mime.types.
	replace(" /tmp/", " "+prefix+"/", 6)
	if strings.Contains(conf, "include ") {
		t.Fatal("nginx.conf includes a file: add it to the substitutions")
	}
	return conf
}

// nginxTest runs `nginx -t` on conf in prefix.
func nginxTest(t *testing.T, bin, prefix, conf string) (string, error) {
	t.Helper()
	file := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-t", "-p", prefix+"/", "-e", filepath.Join(prefix, "error.log"), "-c", file)
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// TestEdgeNginxConfig: the local nginx accepts every rendered edge config.
func TestEdgeNginxConfig(t *testing.T) {
	bin, version := nginxBin(t)
	t.Logf("%s %v", bin, version)
	for _, c := range chartCases() {
		t.Run(c.name, func(t *testing.T) {
			o := renderCase(t, c)
			prefix := t.TempDir()
			conf := localNginxConf(t, o, edgeConf(t, o), prefix, version)
			out, err := nginxTest(t, bin, prefix, conf)
			if err != nil || !strings.Contains(out, "test is successful") {
				t.Errorf("nginx -t: %v\n%s\n--- nginx.conf:\n%s", err, out, conf)
			}
		})
	}
	t.Run("can fail", func(t *testing.T) {
		o := renderCase(t, chartCases()[0])
		prefix := t.TempDir()
		conf := localNginxConf(t, o, edgeConf(t, o), prefix, version)
		conf = strings.Replace(conf, "proxy_buffer_size 32k;", "proxy_buffer_size thirty-two;", 1)
		out, err := nginxTest(t, bin, prefix, conf)
		if err == nil || !strings.Contains(out, "proxy_buffer_size") {
			t.Errorf("nginx -t accepted a broken directive: %v\n%s", err, out)
		}
	})
}

// deref prints an optional int32 as its value or "unset".
func deref(p *int32) string {
	if p == nil {
		return "unset"
	}
	return strconv.Itoa(int(*p))
}

// TestRedisExistingSecret: with redis.existingSecret the chart renders no
// Secret of its own and both services read the URL from the user's.
func TestRedisExistingSecret(t *testing.T) {
	o := renderCase(t, chartCase{name: "existing secret", set: map[string]any{
		"redis": map[string]any{"bundled": false, "existingSecret": "prod-redis", "existingSecretKey": "url"},
	}})
	if len(o.secrets) != 0 {
		t.Fatalf("rendered %d Secrets with redis.existingSecret set", len(o.secrets))
	}
	n := 0
	for _, p := range o.podTemplates() {
		for _, c := range p.tmpl.Spec.Containers {
			for _, e := range c.Env {
				if e.Name != "LIQSTREAM_REDIS_URL" {
					continue
				}
				n++
				if r := e.ValueFrom.SecretKeyRef; r == nil || r.Name != "prod-redis" || r.Key != "url" {
					t.Errorf("%s %s: LIQSTREAM_REDIS_URL from %+v, want prod-redis/url", p.kind, p.name, e.ValueFrom)
				}
			}
		}
	}
	if n < 2 {
		t.Fatalf("LIQSTREAM_REDIS_URL in %d containers, want the gateway's and the snapshotter's", n)
	}
}
