package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"
)

// Spec is everything the re-exec'd stage needs: the ops that build the
// sandbox once, the ops that prepare the target process, and the target.
type Spec struct {
	// Root builds the session's root: mounts, pivot, host name. Applied
	// once, in the stage, which then lives on as the sandbox's PID 1.
	Root []Op
	// Process prepares the target: privileges, session, directory, mask.
	Process []Op
	Argv    []string
	Env     []string
	// Socket is a keeper's socket, by its name in the directory the
	// keeper holds (sockDirFd), unlinked when the keeper is done.
	Socket string
	// Linger is how long a keeper stays once nothing runs in it, for the
	// next command to find it up (0: it goes at once).
	Linger time.Duration
}

// Validate checks every op and the target before a child is started.
func (s *Spec) Validate() error {
	if len(s.Argv) == 0 || s.Argv[0] == "" {
		return errors.New("sandbox: no command to run")
	}
	return s.validateOps()
}

// validateOps checks every op, for specs that carry no command (a
// keeper's).
func (s *Spec) validateOps() error {
	for _, list := range [][]Op{s.Root, s.Process} {
		for _, op := range list {
			if err := op.Validate(); err != nil {
				return err
			}
		}
	}
	return nil
}

// The wire form names each op by its Kind so the stage can rebuild the
// typed value.
type wireOp struct {
	Kind string          `json:"kind"`
	Args json.RawMessage `json:"args"`
}

type wireSpec struct {
	Root    []wireOp `json:"root"`
	Process []wireOp `json:"process"`
	Argv    []string `json:"argv"`
	Env     []string `json:"env"`
	Socket  string   `json:"socket,omitempty"`
	Linger  int64    `json:"linger_ms,omitempty"`
}

// opKinds maps each Kind the stage understands to its Go type.
var opKinds = map[string]reflect.Type{}

func init() {
	for _, op := range []Op{
		MakeRslave{}, MountOverlay{}, MountFuseOverlay{}, MountProc{}, MountDev{}, MountSysfs{},
		MountTmpfs{}, Bind{}, PivotRoot{}, Hostname{}, CloseFds{},
		NoNewPrivs{}, ParentDeathSig{}, Dumpable{}, NewSession{}, Chdir{}, Umask{},
		UserNamespace{}, LoopbackUp{}, StartSpawner{}, Cgroup{},
		FreshKeyring{}, LandlockScope{}, CapBounds{}, Seccomp{},
	} {
		opKinds[op.Kind()] = reflect.TypeOf(op)
	}
}

// MarshalJSON encodes the spec in its wire form.
func (s Spec) MarshalJSON() ([]byte, error) {
	w := wireSpec{Argv: s.Argv, Env: s.Env, Socket: s.Socket, Linger: s.Linger.Milliseconds()}
	var err error
	if w.Root, err = toWire(s.Root); err != nil {
		return nil, err
	}
	if w.Process, err = toWire(s.Process); err != nil {
		return nil, err
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes the wire form back into typed ops.
func (s *Spec) UnmarshalJSON(b []byte) error {
	var w wireSpec
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	var err error
	if s.Root, err = fromWire(w.Root); err != nil {
		return err
	}
	if s.Process, err = fromWire(w.Process); err != nil {
		return err
	}
	s.Argv, s.Env, s.Socket = w.Argv, w.Env, w.Socket
	s.Linger = time.Duration(max(w.Linger, 0)) * time.Millisecond
	return nil
}

func toWire(ops []Op) ([]wireOp, error) {
	out := make([]wireOp, len(ops))
	for i, op := range ops {
		args, err := json.Marshal(op)
		if err != nil {
			return nil, err
		}
		out[i] = wireOp{Kind: op.Kind(), Args: args}
	}
	return out, nil
}

func fromWire(ops []wireOp) ([]Op, error) {
	out := make([]Op, len(ops))
	for i, w := range ops {
		typ, ok := opKinds[w.Kind]
		if !ok {
			return nil, fmt.Errorf("unknown op kind %q", w.Kind)
		}
		p := reflect.New(typ)
		if err := json.Unmarshal(w.Args, p.Interface()); err != nil {
			return nil, fmt.Errorf("op %s: %w", w.Kind, err)
		}
		out[i] = p.Elem().Interface().(Op)
	}
	return out, nil
}
