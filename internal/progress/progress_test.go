package progress

import (
	"bytes"
	"testing"
)

func TestProgress(t *testing.T) {
	var buf bytes.Buffer
	p := New(&buf, "reading x.tar", 2<<20)
	p.Add(1 << 20) // the first read draws
	p.last = p.last.Add(every * 100)
	p.Add(1) // too soon after: not drawn
	p.Finish()
	want := "\rreading x.tar  1.0M / 2.0M   50%\x1b[K" + "\rreading x.tar  1.0M / 2.0M   50%\x1b[K\n"
	if got := buf.String(); got != want {
		t.Errorf("progress wrote\n%q, want\n%q", got, want)
	}
	est := New(&buf, "copying", 10)
	est.Add(7)
	est.Complete()
	buf.Reset()
	est.Finish()
	if got, want := buf.String(), "\rcopying  10B / 10B  100%\x1b[K\n"; got != want {
		t.Errorf("a completed estimate ends as %q, want %q", got, want)
	}
	var none *Line = New(nil, "x", 1)
	none.Add(5)
	none.Finish() // no terminal: nothing, and no panic
	for n, want := range map[int64]string{0: "0B", 1023: "1023B", 1024: "1.0K", 5 << 30: "5.0G"} {
		if got := HumanSize(n); got != want {
			t.Errorf("HumanSize(%d) = %q, want %q", n, got, want)
		}
	}
}
