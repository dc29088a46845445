package sandbox

func (FreshKeyring) apply(*state) error {
	return step("keyctl(KEYCTL_JOIN_SESSION_KEYRING)", "", joinFreshKeyring())
}

func (LandlockScope) apply(*state) error {
	_, err := landlockScope()
	return step("landlock_restrict_self", "", err)
}

func (o CapBounds) apply(*state) error {
	return step("prctl(PR_CAPBSET_DROP)", "", dropBoundingCaps(o.Nested))
}

func (o Seccomp) apply(*state) error {
	return step("seccomp(SECCOMP_SET_MODE_FILTER)", "", installSeccomp(o.Nested))
}
