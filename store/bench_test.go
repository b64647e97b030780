package store

import (
	"testing"
)

// The benchmarks append 128-byte records durably (fsync'd), as the leaf
// does for telemetry. fsyncs/op shows what group commit saves: 1 means one
// fsync'd transaction per record.

func benchLog(b *testing.B) (*Store, *Log) {
	s := openStore(b, "", Options{ReclaimMinFree: -1})
	l := openLog(b, s, "bench", Limits{})
	return s, l
}

func reportAppends(b *testing.B, s *Store, commits0 uint64) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(s.Stats().Commits-commits0)/float64(b.N), "commits/op")
}

func BenchmarkAppendSingle(b *testing.B) {
	s, l := benchLog(b)
	data := make([]byte, 128)
	b.ReportAllocs()
	commits := s.Stats().Commits
	b.ResetTimer()
	for range b.N {
		if _, err := l.Append(data); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportAppends(b, s, commits)
}

func BenchmarkAppendParallel(b *testing.B) {
	s, l := benchLog(b)
	b.ReportAllocs()
	b.SetParallelism(32) // 32 appenders per CPU, like many local publishers
	commits := s.Stats().Commits
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		data := make([]byte, 128)
		for pb.Next() {
			if _, err := l.Append(data); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportAppends(b, s, commits)
}

func BenchmarkAppendBatch100(b *testing.B) {
	s, l := benchLog(b)
	batch := make([][]byte, 100)
	for i := range batch {
		batch[i] = make([]byte, 128)
	}
	b.ReportAllocs()
	commits := s.Stats().Commits
	b.ResetTimer()
	for range b.N {
		if _, err := l.AppendBatch(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(s.Stats().Commits-commits)/float64(b.N), "commits/op")
}
