package subject

import (
	"fmt"
	"testing"
)

// benchIndex is shaped like a busy leaf: per-device literal subjects, a few
// wildcard listeners and queue groups.
func benchIndex(b *testing.B) *Index[int] {
	b.Helper()
	var x Index[int]
	add := func(subject, queue string) {
		if err := x.Insert(&Sub[int]{Subject: subject, Queue: queue}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 1000 {
		add(fmt.Sprintf("devices.d%d.telemetry.temp", i), "")
		add(fmt.Sprintf("_INBOX.r%d.*", i), "")
	}
	add("devices.*.telemetry.>", "")
	add("devices.*.telemetry.temp", "writers")
	add("devices.*.telemetry.temp", "writers")
	add("devices.>", "audit")
	add(">", "")
	return &x
}

func BenchmarkMatchLiteralCached(b *testing.B) {
	x := benchIndex(b)
	subj := "devices.d42.telemetry.temp"
	x.Match(subj)
	b.ReportAllocs()
	for b.Loop() {
		if r := x.Match(subj); len(r.Plain) != 3 {
			b.Fatal(summaryInt(r))
		}
	}
}

func BenchmarkMatchBytesCached(b *testing.B) {
	x := benchIndex(b)
	subj := []byte("devices.d42.telemetry.temp")
	x.MatchBytes(subj)
	b.ReportAllocs()
	for b.Loop() {
		if r := x.MatchBytes(subj); len(r.Plain) != 3 {
			b.Fatal(summaryInt(r))
		}
	}
}

// BenchmarkMatchWildcard matches subjects that reach wildcard filters.
// "cached" repeats one subject; "miss" cycles through more subjects than
// the cache holds, so nearly every call walks the trie and fills the cache.
func BenchmarkMatchWildcard(b *testing.B) {
	x := benchIndex(b)
	subjects := make([]string, 4*cacheMax)
	for i := range subjects {
		subjects[i] = fmt.Sprintf("devices.x%d.telemetry.temp", i)
	}
	b.Run("cached", func(b *testing.B) {
		x.Match(subjects[0])
		b.ReportAllocs()
		for b.Loop() {
			if r := x.Match(subjects[0]); len(r.Plain) != 2 || len(r.Groups) != 2 {
				b.Fatal(summaryInt(r))
			}
		}
	})
	b.Run("miss", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if r := x.Match(subjects[i%len(subjects)]); len(r.Plain) != 2 {
				b.Fatal(summaryInt(r))
			}
			i++
		}
	})
}

func BenchmarkMatchParallel(b *testing.B) {
	x := benchIndex(b)
	subj := "devices.d42.telemetry.temp"
	x.Match(subj)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			x.Match(subj)
		}
	})
}

func BenchmarkHasInterestUncached(b *testing.B) {
	x := benchIndex(b)
	b.ReportAllocs()
	for b.Loop() {
		if !x.HasInterest("devices.x1.telemetry.temp") {
			b.Fatal("no interest")
		}
	}
}

func BenchmarkInsertRemove(b *testing.B) {
	x := benchIndex(b)
	for _, subj := range []string{"devices.d1.telemetry.temp", "devices.*.cmd"} {
		x.Match(subj)
	}
	s := &Sub[int]{Subject: "_INBOX.abcdef.*"}
	b.ReportAllocs()
	for b.Loop() {
		if err := x.Insert(s); err != nil {
			b.Fatal(err)
		}
		if err := x.Remove(s); err != nil {
			b.Fatal(err)
		}
	}
}

func summaryInt(r Result[int]) string {
	return fmt.Sprintf("%d plain, %d groups", len(r.Plain), len(r.Groups))
}
