package promtext_test

import (
	"bytes"
	"math"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/canopy-iot/canopy/internal/promtext"
)

// parse reads a page the way Prometheus does.
func parse(t *testing.T, page []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(page))
	if err != nil {
		t.Fatalf("Prometheus cannot parse the page: %v\n%s", err, page)
	}
	return fams
}

func write(t *testing.T, s *promtext.Set) []byte {
	t.Helper()
	var b bytes.Buffer
	n, err := s.WriteTo(&b)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(b.Len()) {
		t.Fatalf("WriteTo returned %d, wrote %d bytes", n, b.Len())
	}
	return b.Bytes()
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestPageParsesWithTypesLabelsAndValues(t *testing.T) {
	var s promtext.Set
	msgs := s.Counter("canopy_test_messages_total", "Messages by protocol.")
	msgs.Uint(7, "protocol", "nats")
	msgs.Uint(1<<40, "protocol", "mqtt")
	s.Gauge("canopy_test_up", "1 when up.\nSecond line with a \\ backslash and \"quotes\".").Bool(true)
	weird := "a \"quoted\" \\ back\nslash and ünïcödé"
	s.Gauge("canopy_test_last_error_info", "").Add(1, "error", weird, "url", "tls://hub:7422")
	s.Gauge("canopy_test_special", "Special values.").Add(math.Inf(1), "v", "inf").Add(math.NaN(), "v", "nan").Add(-0.25, "v", "neg")
	s.Gauge("canopy_test_empty", "No samples: left out.")

	page := write(t, &s)
	fams := parse(t, page)
	if _, ok := fams["canopy_test_empty"]; ok {
		t.Error("a family without samples was written")
	}
	m := fams["canopy_test_messages_total"]
	if m.GetType() != dto.MetricType_COUNTER || m.GetHelp() != "Messages by protocol." || len(m.Metric) != 2 {
		t.Fatalf("messages family: %v", m)
	}
	got := map[string]float64{}
	for _, x := range m.Metric {
		got[labels(x)["protocol"]] = x.GetCounter().GetValue()
	}
	if got["nats"] != 7 || got["mqtt"] != 1<<40 {
		t.Errorf("counter values %v", got)
	}
	up := fams["canopy_test_up"]
	if up.GetType() != dto.MetricType_GAUGE || up.Metric[0].GetGauge().GetValue() != 1 ||
		up.GetHelp() != "1 when up.\nSecond line with a \\ backslash and \"quotes\"." {
		t.Errorf("up family: %v", up)
	}
	info := fams["canopy_test_last_error_info"].Metric[0]
	if l := labels(info); l["error"] != weird || l["url"] != "tls://hub:7422" {
		t.Errorf("label values came back as %q", l)
	}
	sp := map[string]float64{}
	for _, x := range fams["canopy_test_special"].Metric {
		sp[labels(x)["v"]] = x.GetGauge().GetValue()
	}
	if !math.IsInf(sp["inf"], 1) || !math.IsNaN(sp["nan"]) || sp["neg"] != -0.25 {
		t.Errorf("special values %v", sp)
	}
	if !strings.Contains(string(page), "# TYPE canopy_test_messages_total counter\n") {
		t.Errorf("no TYPE line:\n%s", page)
	}
}

func TestOrderIsDeterministic(t *testing.T) {
	build := func(reverse bool) []byte {
		var s promtext.Set
		names := []string{"b_metric", "a_metric", "c_metric"}
		values := []string{"z", "a", "m"}
		if reverse {
			names = []string{"c_metric", "a_metric", "b_metric"}
			values = []string{"m", "a", "z"}
		}
		for _, n := range names {
			f := s.Gauge(n, "help")
			for _, v := range values {
				f.Add(1, "k", v)
			}
		}
		return write(t, &s)
	}
	a, b := build(false), build(true)
	if !bytes.Equal(a, b) {
		t.Fatalf("same metrics, different pages:\n%s\n---\n%s", a, b)
	}
	want := "# HELP a_metric help\n# TYPE a_metric gauge\na_metric{k=\"a\"} 1\na_metric{k=\"m\"} 1\na_metric{k=\"z\"} 1\n"
	if !bytes.HasPrefix(a, []byte(want)) {
		t.Fatalf("page starts\n%s\nwant\n%s", a, want)
	}
}

func TestMisuseIsAnErrorNotAPage(t *testing.T) {
	cases := map[string]func(*promtext.Set){
		"bad metric name": func(s *promtext.Set) { s.Gauge("9lives", "").Add(1) },
		"bad label name":  func(s *promtext.Set) { s.Gauge("ok", "").Add(1, "bad-label", "x") },
		"reserved label":  func(s *promtext.Set) { s.Gauge("ok", "").Add(1, "__name__", "x") },
		"odd labels":      func(s *promtext.Set) { s.Gauge("ok", "").Add(1, "k") },
		"two types":       func(s *promtext.Set) { s.Gauge("ok", "").Add(1); s.Counter("ok", "").Add(1, "k", "v") },
		"same labels":     func(s *promtext.Set) { s.Gauge("ok", "").Add(1, "k", "v").Add(2, "k", "v") },
	}
	for name, build := range cases {
		t.Run(name, func(t *testing.T) {
			var s promtext.Set
			s.Gauge("fine", "").Add(1)
			build(&s)
			var b bytes.Buffer
			if _, err := s.WriteTo(&b); err == nil || b.Len() != 0 {
				t.Fatalf("err %v, wrote %q", err, b.String())
			}
		})
	}
}
