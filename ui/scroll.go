package ui

import (
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// scroller is a cursor over n items shown height at a time.
type scroller struct {
	cursor, offset, n, height int
}

func (s *scroller) setN(n int) {
	s.n = n
	s.clamp()
}

func (s *scroller) setHeight(h int) {
	s.height = max(1, h)
	s.clamp()
}

func (s *scroller) moveTo(i int) {
	s.cursor = i
	s.clamp()
}

func (s *scroller) clamp() {
	s.cursor = max(0, min(s.cursor, s.n-1))
	if s.cursor < s.offset {
		s.offset = s.cursor
	}
	if s.height > 0 && s.cursor >= s.offset+s.height {
		s.offset = s.cursor - s.height + 1
	}
	s.offset = max(0, min(s.offset, s.n-s.height))
}

// window is the range of items on screen.
func (s *scroller) window() (from, to int) {
	return s.offset, min(s.n, s.offset+s.height)
}

// movement is the bindings a scroller answers to.
type movement struct{ Up, Down, PageUp, PageDown, Home, End key.Binding }

// handle moves the cursor for a movement key and reports whether msg
// was one.
func (s *scroller) handle(msg tea.KeyPressMsg, k movement) bool {
	switch {
	case key.Matches(msg, k.Up):
		s.moveTo(s.cursor - 1)
	case key.Matches(msg, k.Down):
		s.moveTo(s.cursor + 1)
	case key.Matches(msg, k.PageUp):
		s.moveTo(s.cursor - s.height)
	case key.Matches(msg, k.PageDown):
		s.moveTo(s.cursor + s.height)
	case key.Matches(msg, k.Home):
		s.moveTo(0)
	case key.Matches(msg, k.End):
		s.moveTo(s.n - 1)
	default:
		return false
	}
	return true
}
