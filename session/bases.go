package session

import (
	"fmt"
	"strings"

	"github.com/incarnate-dev/incarnate/layers"
)

// The layers package keeps bases and cannot see sessions (they import
// it), so what needs both lives here.

// BaseUsers maps each base to the sessions that stand on it, by name.
func (s *Store) BaseUsers() (map[string][]string, error) {
	list, err := s.List()
	if err != nil {
		return nil, err
	}
	users := map[string][]string{}
	for _, m := range list {
		users[m.Base] = append(users[m.Base], m.Name)
	}
	return users, nil
}

// RemoveBase deletes base name and the layers only it used. It refuses
// while a session stands on the base (its lower dirs would vanish under
// it) or another base is built on it. It returns the bytes freed.
func (s *Store) RemoveBase(name string) (int64, error) {
	if err := s.CheckRemoveBase(name); err != nil {
		return 0, err
	}
	return s.Layers.RemoveBase(name)
}

// CheckRemoveBase says why base name cannot be removed, or nil.
func (s *Store) CheckRemoveBase(name string) error {
	if _, err := s.Layers.Get(name); err != nil {
		return err
	}
	users, err := s.BaseUsers()
	if err != nil {
		return err
	}
	if on := users[name]; len(on) > 0 && name != layers.HostBase {
		what, them := "session", "it"
		if len(on) > 1 {
			what, them = "sessions", "them"
		}
		return fmt.Errorf("base %q is %w by %s %s; remove %s first: incarnate rm %s",
			name, layers.ErrInUse, what, strings.Join(on, ", "), them, strings.Join(on, " "))
	}
	return s.Layers.CheckRemove(name)
}
