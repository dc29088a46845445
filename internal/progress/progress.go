// Package progress draws the one-line progress reports of long work (an
// import, a clone, a commit) on a terminal, and formats sizes the way
// every view in incarnate shows them.
package progress

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/incarnate-dev/incarnate/internal/termtext"
)

// every bounds how often the progress line is redrawn: ten
// times a second reads as smooth and costs nothing next to the unpack.
const every = 100 * time.Millisecond

// Line redraws one line, "label  12.3 MiB / 45.6 MiB  27%", in place
// on a terminal. An image's layers have no size known before they are
// read, so there the line counts layers: "label  12.3 MiB  layer 2/3  33%".
// A nil *Line draws nothing, so callers need not ask.
type Line struct {
	w      io.Writer
	label  string
	total  int64
	layers int    // CountLayers
	unit   string // NewCount: items, not bytes

	mu         sync.Mutex // reads may come from a goroutine (a flattened image)
	done       int64
	layersDone int
	last       time.Time
}

// New returns nil when w is nil: no terminal, no progress. A total of 0
// shows bytes without a percentage.
func New(w io.Writer, label string, total int64) *Line {
	if w == nil {
		return nil
	}
	// The label names a source path or a layer, which an image chose.
	return &Line{w: w, label: termtext.Visible(label), total: total}
}

// CountLayers makes the line count n layers instead of bytes against a
// total.
func (p *Line) CountLayers(n int) {
	if p != nil {
		p.layers = n
	}
}

// Add counts n more bytes done.
func (p *Line) Add(n int) {
	if p == nil || n == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += int64(n)
	p.redraw()
}

// LayerDone counts one more of an image's layers read to its end.
func (p *Line) LayerDone() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.layersDone++
	p.redraw()
}

// redraw draws unless it drew a moment ago; p.mu is held.
func (p *Line) redraw() {
	if now := time.Now(); now.Sub(p.last) >= every {
		p.last = now
		p.draw()
	}
}

// Complete marks the work done whatever was counted: a total that was
// an estimate (disk blocks, say, for bytes of content) ends at 100%.
func (p *Line) Complete() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = max(p.done, p.total)
}

// Finish draws the final state and ends the line.
func (p *Line) Finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.draw()
	fmt.Fprint(p.w, "\n")
}

// NewCount is New for a count of items (paths, say) rather than bytes:
// "label  120/10000 paths  1%".
func NewCount(w io.Writer, label string, total int64, unit string) *Line {
	p := New(w, label, total)
	if p != nil {
		p.unit = unit
	}
	return p
}

func (p *Line) draw() {
	line := fmt.Sprintf("\r%s  %s", p.label, HumanSize(p.done))
	switch {
	case p.unit != "":
		line = fmt.Sprintf("\r%s  %d/%d %s  %3d%%", p.label, p.done, p.total, p.unit, p.done*100/max(p.total, 1))
	case p.layers > 0:
		line += fmt.Sprintf("  layer %d/%d  %3d%%", min(p.layersDone+1, p.layers), p.layers, p.layersDone*100/p.layers)
	case p.total > 0:
		pct := min(100, p.done*100/p.total)
		line += fmt.Sprintf(" / %s  %3d%%", HumanSize(p.total), pct)
	}
	fmt.Fprint(p.w, line+"\x1b[K") // erase what a longer line left
}

// Reader counts what is read through r.
func (p *Line) Reader(r io.Reader) io.Reader {
	if p == nil {
		return r
	}
	return &progressReader{r: r, p: p}
}

type progressReader struct {
	r io.Reader
	p *Line
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.p.Add(n)
	return n, err
}

// HumanSize prints a byte count the way `ls -h` does (4.0K, 1.9M): the one
// format every view of sizes in incarnate shares.
func HumanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%c", float64(n)/float64(div), "KMGTPE"[exp])
}
