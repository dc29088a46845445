#include "textflag.h"

// entry is the process's entry point in a release build (the linker's
// -E flag names it). The kernel leaves argc, argv, envp and auxv at SP;
// the stage gets that address and, unless it sees the command through
// itself, returns, and the Go runtime starts on the stack as it found it.
TEXT ·entry(SB),NOSPLIT|NOFRAME,$0
	MOVQ SP, DI
	CALL ·blob(SB)
	JMP _rt0_amd64_linux(SB)
