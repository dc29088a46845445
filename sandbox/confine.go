package sandbox

// The confinement ops: what a keeper's spawner imposes on itself once,
// and so on every process it starts (they inherit all of it). Each says
// why in confine_linux.go and the files it calls.

// FreshKeyring gives the process a new, empty session keyring instead of
// the caller's (whose keys a login session or ssh-agent may have put
// there). The spawner applies it again before every fork, so no two
// processes share one.
type FreshKeyring struct{}

// LandlockScope keeps the process away from abstract unix sockets and
// signals outside its own Landlock domain (ABI 6, Linux 6.12). Where the
// kernel lacks it, nothing happens: doctor says so, and --net none closes
// the socket route too.
type LandlockScope struct{}

// CapBounds drops the capabilities no session needs from every set; with
// Nested, CAP_SYS_ADMIN stays, for podman or bwrap inside.
type CapBounds struct {
	Nested bool `json:"nested,omitempty"`
}

// Seccomp installs the default filter (seccomp_policy.go); Nested lets
// namespaces and mounts through.
type Seccomp struct {
	Nested bool `json:"nested,omitempty"`
}

func (FreshKeyring) Kind() string  { return "fresh_keyring" }
func (LandlockScope) Kind() string { return "landlock_scope" }
func (CapBounds) Kind() string     { return "cap_bounds" }
func (Seccomp) Kind() string       { return "seccomp" }

func (FreshKeyring) Status() int  { return StatusFreshKeyring }
func (LandlockScope) Status() int { return StatusLandlock }
func (CapBounds) Status() int     { return StatusCapBounds }
func (Seccomp) Status() int       { return StatusSeccomp }

func (FreshKeyring) Validate() error  { return nil }
func (LandlockScope) Validate() error { return nil }
func (CapBounds) Validate() error     { return nil }
func (Seccomp) Validate() error       { return nil }

// everyFork: a keyring per process.
func (FreshKeyring) everyFork() {}
