// Package config fills a service's config struct from, in rising priority, the
// struct's defaults, a YAML file, LIQSTREAM_* environment variables and flags.
//
// Every leaf field of the struct (tag `mapstructure:"key"`, nested structs give
// dotted keys) becomes a flag --key and an env var LIQSTREAM_KEY with dots as
// underscores, so one struct is the whole, documented surface of a service.
package config

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/liqstream/liqstream/pkg/buildinfo"
)

// EnvPrefix prefixes every environment variable a service reads.
const EnvPrefix = "LIQSTREAM"

// ErrHelp is returned when the arguments asked for --help; usage was already printed.
var ErrHelp = pflag.ErrHelp

// ErrVersion is returned for --version once the version line was printed; a
// main exits 0 on it, as on ErrHelp.
var ErrVersion = errors.New("version printed")

// ErrChecked is returned for --check-config when the configuration loaded and
// validated and "<name>: config ok" was printed; a main exits 0 on it. A bad
// configuration returns its error as without the flag.
var ErrChecked = errors.New("config checked")

// Validator is implemented by config structs that check themselves after loading.
type Validator interface{ Validate() error }

type leaf struct {
	key   string
	value reflect.Value
	usage string
}

// Load fills cfg, a pointer to a struct already holding the defaults. name is
// the program name for usage text, args exclude the program name, and usage
// output goes to out. The file comes from --config or LIQSTREAM_CONFIG.
// --version prints the build (pkg/buildinfo) and returns ErrVersion;
// --check-config loads and validates, prints "<name>: config ok" and returns
// ErrChecked.
func Load(name string, args []string, out io.Writer, cfg any) error {
	rv := reflect.ValueOf(cfg)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config: Load needs a pointer to a struct, got %T", cfg)
	}
	var leaves []leaf
	if err := collect(rv.Elem(), "", &leaves); err != nil {
		return err
	}

	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(out)
	fs.SortFlags = false
	file := fs.String("config", "", "YAML config file (also "+EnvPrefix+"_CONFIG)")
	version := fs.Bool("version", false, "print the version and exit")
	check := fs.Bool("check-config", false, "load and validate the configuration (file, env, flags), print \"config ok\" and exit; exit status 2 names the bad key")
	for _, l := range leaves {
		if fs.Lookup(l.key) != nil {
			return fmt.Errorf("config: key %s clashes with the built-in flag --%s", l.key, l.key)
		}
		if err := addFlag(fs, l); err != nil {
			return err
		}
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *version {
		fmt.Fprintln(out, buildinfo.String(name))
		return ErrVersion
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (settings are flags like --%s)", fs.Arg(0), leaves[0].key)
	}

	v := viper.New()
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_", "-", "_"))
	v.AutomaticEnv()
	known := make(map[string]bool, len(leaves))
	for _, l := range leaves {
		known[l.key] = true
		v.SetDefault(l.key, l.value.Interface())
		if err := v.BindPFlag(l.key, fs.Lookup(l.key)); err != nil {
			return fmt.Errorf("config: bind flag %s: %w", l.key, err)
		}
	}
	path := *file
	if path == "" {
		path = strings.TrimSpace(lookupEnv(v, "config"))
	}
	if path != "" {
		fv := viper.New()
		fv.SetConfigFile(path)
		fv.SetConfigType("yaml")
		if err := fv.ReadInConfig(); err != nil {
			return fmt.Errorf("read config file %s: %w", path, err)
		}
		var unknown []string
		for _, k := range fv.AllKeys() {
			if !known[k] {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return fmt.Errorf("config file %s: unknown key %q", path, unknown[0])
		}
		if err := v.MergeConfigMap(fv.AllSettings()); err != nil {
			return fmt.Errorf("merge config file %s: %w", path, err)
		}
	}
	dc := func(c *mapstructure.DecoderConfig) {
		c.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		)
		c.WeaklyTypedInput = true
	}
	if err := v.Unmarshal(cfg, dc); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if val, ok := cfg.(Validator); ok {
		if err := val.Validate(); err != nil {
			return fmt.Errorf("invalid config: %w", err)
		}
	}
	if *check {
		fmt.Fprintln(out, name+": config ok")
		return ErrChecked
	}
	return nil
}

func lookupEnv(v *viper.Viper, key string) string {
	if err := v.BindEnv(key); err != nil {
		return ""
	}
	return v.GetString(key)
}

func collect(v reflect.Value, prefix string, out *[]leaf) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
		if tag == "" || tag == "-" {
			return fmt.Errorf("config: field %s.%s needs a mapstructure tag", t.Name(), f.Name)
		}
		key := prefix + tag
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Time{}) {
			if err := collect(fv, key+".", out); err != nil {
				return err
			}
			continue
		}
		*out = append(*out, leaf{key: key, value: fv, usage: f.Tag.Get("desc")})
	}
	return nil
}

func addFlag(fs *pflag.FlagSet, l leaf) error {
	usage := l.usage
	if usage == "" {
		usage = l.key
	}
	usage += " (env " + EnvName(l.key) + ")"
	switch d := l.value.Interface().(type) {
	case string:
		fs.String(l.key, d, usage)
	case bool:
		fs.Bool(l.key, d, usage)
	case int:
		fs.Int(l.key, d, usage)
	case uint64:
		fs.Uint64(l.key, d, usage)
	case float64:
		fs.Float64(l.key, d, usage)
	case time.Duration:
		fs.Duration(l.key, d, usage)
	case []string:
		fs.StringSlice(l.key, d, usage)
	default:
		return errors.New("config: unsupported type " + l.value.Type().String() + " for key " + l.key)
	}
	return nil
}

// EnvName is the environment variable that sets key.
func EnvName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}
