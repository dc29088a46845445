package layers

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progressEvery bounds how often the progress line is redrawn: ten
// times a second reads as smooth and costs nothing next to the unpack.
const progressEvery = 100 * time.Millisecond

// progress redraws one line, "label  12.3 MiB / 45.6 MiB  27%", in place
// on a terminal. An image's layers have no size known before they are
// read, so there the line counts layers: "label  12.3 MiB  layer 2/3  33%".
// A nil *progress draws nothing, so callers need not ask.
type progress struct {
	w      io.Writer
	label  string
	total  int64
	layers int // set for an image

	mu         sync.Mutex // reads may come from a goroutine (a flattened image)
	done       int64
	layersDone int
	last       time.Time
}

// newProgress returns nil when w is nil: no terminal, no progress.
func newProgress(w io.Writer, label string, total int64) *progress {
	if w == nil {
		return nil
	}
	return &progress{w: w, label: label, total: total}
}

func (p *progress) add(n int) {
	if p == nil || n == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += int64(n)
	p.redraw()
}

// layerDone counts one more of an image's layers read to its end.
func (p *progress) layerDone() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.layersDone++
	p.redraw()
}

// redraw draws unless it drew a moment ago; p.mu is held.
func (p *progress) redraw() {
	if now := time.Now(); now.Sub(p.last) >= progressEvery {
		p.last = now
		p.draw()
	}
}

// finish draws the final state and ends the line.
func (p *progress) finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.draw()
	fmt.Fprint(p.w, "\n")
}

func (p *progress) draw() {
	line := fmt.Sprintf("\r%s  %s", p.label, HumanSize(p.done))
	switch {
	case p.layers > 0:
		line += fmt.Sprintf("  layer %d/%d  %3d%%", min(p.layersDone+1, p.layers), p.layers, p.layersDone*100/p.layers)
	case p.total > 0:
		pct := min(100, p.done*100/p.total)
		line += fmt.Sprintf(" / %s  %3d%%", HumanSize(p.total), pct)
	}
	fmt.Fprint(p.w, line+"\x1b[K") // erase what a longer line left
}

// reader counts what is read through r.
func (p *progress) reader(r io.Reader) io.Reader {
	if p == nil {
		return r
	}
	return &progressReader{r: r, p: p}
}

type progressReader struct {
	r io.Reader
	p *progress
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.p.add(n)
	return n, err
}
