package topic

import "testing"

var benchTopics = []string{
	"sensors/greenhouse-3/temperature",
	"/devices/abc.def//status/",
	"$SYS/broker/clients/connected",
}

func BenchmarkAppendSubject(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, 128)
	for b.Loop() {
		for _, topic := range benchTopics {
			var err error
			if buf, err = AppendSubject(buf[:0], topic); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkSubject(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		for _, topic := range benchTopics {
			if _, err := Subject(topic); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkTopic(b *testing.B) {
	subjects := make([]string, len(benchTopics))
	for i, topic := range benchTopics {
		subjects[i], _ = Subject(topic)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, subject := range subjects {
			if _, err := Topic(subject); err != nil {
				b.Fatal(err)
			}
		}
	}
}
