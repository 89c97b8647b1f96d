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
