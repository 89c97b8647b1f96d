package config

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

type inner struct {
	Interval time.Duration `mapstructure:"interval"`
	Rate     float64       `mapstructure:"rate"`
}

type testConfig struct {
	Listen  string   `mapstructure:"listen" desc:"listen address"`
	Symbols []string `mapstructure:"symbols"`
	Debug   bool     `mapstructure:"debug"`
	Count   int      `mapstructure:"count"`
	Inner   inner    `mapstructure:"inner"`
}

func (c *testConfig) Validate() error {
	if c.Count < 0 {
		return errors.New("count: must be >= 0")
	}
	return nil
}

func defaults() *testConfig {
	return &testConfig{Listen: ":80", Symbols: []string{"BTCUSDT"}, Count: 1, Inner: inner{Interval: time.Second, Rate: 0.5}}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("listen: \":90\"\ninner:\n  interval: 3s\nsymbols: [ETHUSDT, BTCUSDT]\n"), 0o644)
	unknown := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknown, []byte("inner:\n  intervall: 3s\n"), 0o644)

	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(c *testConfig)
		wantErr string
	}{
		{name: "defaults", want: func(c *testConfig) {}},
		{name: "file", args: []string{"--config", good}, want: func(c *testConfig) {
			c.Listen, c.Inner.Interval, c.Symbols = ":90", 3*time.Second, []string{"ETHUSDT", "BTCUSDT"}
		}},
		{name: "config file from env", env: map[string]string{"LIQSTREAM_CONFIG": good}, want: func(c *testConfig) {
			c.Listen, c.Inner.Interval, c.Symbols = ":90", 3*time.Second, []string{"ETHUSDT", "BTCUSDT"}
		}},
		{name: "env beats file", args: []string{"--config", good}, env: map[string]string{"LIQSTREAM_LISTEN": ":91", "LIQSTREAM_INNER_RATE": "0.25", "LIQSTREAM_SYMBOLS": "SOLUSDT,XRPUSDT"}, want: func(c *testConfig) {
			c.Listen, c.Inner.Interval, c.Inner.Rate, c.Symbols = ":91", 3*time.Second, 0.25, []string{"SOLUSDT", "XRPUSDT"}
		}},
		{name: "flag beats env", args: []string{"--listen", ":92", "--inner.interval=7s", "--debug"}, env: map[string]string{"LIQSTREAM_LISTEN": ":91"}, want: func(c *testConfig) {
			c.Listen, c.Inner.Interval, c.Debug = ":92", 7*time.Second, true
		}},
		{name: "unknown file key", args: []string{"--config", unknown}, wantErr: `unknown key "inner.intervall"`},
		{name: "missing file", args: []string{"--config", filepath.Join(dir, "nope.yaml")}, wantErr: "read config file"},
		{name: "bad env duration names key", env: map[string]string{"LIQSTREAM_INNER_INTERVAL": "soon"}, wantErr: "interval"},
		{name: "bad flag", args: []string{"--count", "x"}, wantErr: "count"},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: "unknown flag: --nope"},
		{name: "validate", args: []string{"--count", "-1"}, wantErr: "invalid config: count"},
		{name: "stray argument", args: []string{"run"}, wantErr: `unexpected argument "run"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			got := defaults()
			err := Load("test", tc.args, io.Discard, got)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := defaults()
			tc.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var sb strings.Builder
	err := Load("svc", []string{"--help"}, &sb, defaults())
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("want ErrHelp, got %v", err)
	}
	for _, s := range []string{"--inner.interval", "LIQSTREAM_INNER_INTERVAL", "listen address"} {
		if !strings.Contains(sb.String(), s) {
			t.Errorf("usage lacks %q:\n%s", s, sb.String())
		}
	}
}

func TestVersionAndCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("listen: \":90\"\n"), 0o644)
	unknown := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknown, []byte("inner:\n  intervall: 3s\n"), 0o644)
	invalid := filepath.Join(dir, "invalid.yaml")
	os.WriteFile(invalid, []byte("count: -1\n"), 0o644)

	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr error  // sentinel, or nil for a plain error
		errHas  string // substring of a plain error
		out     string // substring of the output
		noOut   string // must not be in the output
	}{
		{name: "version", args: []string{"--version"}, wantErr: ErrVersion, out: "svc dev (", noOut: "config ok"},
		{name: "version wins over a bad config", args: []string{"--version", "--config", unknown}, wantErr: ErrVersion, out: ", go1."},
		{name: "check-config defaults", args: []string{"--check-config"}, wantErr: ErrChecked, out: "svc: config ok\n"},
		{name: "check-config file", args: []string{"--check-config", "--config", good}, wantErr: ErrChecked, out: "svc: config ok"},
		{name: "check-config env only", args: []string{"--check-config"}, env: map[string]string{"LIQSTREAM_CONFIG": good, "LIQSTREAM_INNER_RATE": "0.1"}, wantErr: ErrChecked, out: "svc: config ok"},
		{name: "check-config unknown file key", args: []string{"--check-config", "--config", unknown}, errHas: `unknown key "inner.intervall"`, noOut: "config ok"},
		{name: "check-config invalid value names the key", args: []string{"--check-config", "--config", invalid}, errHas: "invalid config: count", noOut: "config ok"},
		{name: "check-config bad env names the key", args: []string{"--check-config"}, env: map[string]string{"LIQSTREAM_INNER_INTERVAL": "soon"}, errHas: "interval", noOut: "config ok"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var sb strings.Builder
			err := Load("svc", tc.args, &sb, defaults())
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got error %v, want %v", err, tc.wantErr)
				}
			case err == nil || errors.Is(err, ErrChecked) || errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), tc.errHas):
				t.Fatalf("got error %v, want one containing %q", err, tc.errHas)
			}
			if !strings.Contains(sb.String(), tc.out) {
				t.Errorf("output %q lacks %q", sb.String(), tc.out)
			}
			if tc.noOut != "" && strings.Contains(sb.String(), tc.noOut) {
				t.Errorf("output %q has %q", sb.String(), tc.noOut)
			}
		})
	}
}

func TestBuiltinFlagClash(t *testing.T) {
	type clash struct {
		Version string `mapstructure:"version"`
	}
	err := Load("svc", nil, io.Discard, &clash{})
	if err == nil || !strings.Contains(err.Error(), "clashes with the built-in flag --version") {
		t.Fatalf("got %v", err)
	}
}
