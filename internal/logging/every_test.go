package logging

import (
	"testing"
	"time"
)

func TestEvery(t *testing.T) {
	e := Every{Interval: time.Hour}
	if ok, n := e.Allow(); !ok || n != 0 {
		t.Fatalf("first occurrence: %v %d, want logged", ok, n)
	}
	for range 3 {
		if ok, _ := e.Allow(); ok {
			t.Fatal("an occurrence within the interval was logged")
		}
	}
	e.last = e.last.Add(-2 * time.Hour) // the interval has passed
	if ok, n := e.Allow(); !ok || n != 3 {
		t.Fatalf("after the interval: %v %d, want logged with 3 suppressed", ok, n)
	}
	var always Every
	for range 2 {
		if ok, _ := always.Allow(); !ok {
			t.Fatal("the zero value suppressed an occurrence")
		}
	}
}
