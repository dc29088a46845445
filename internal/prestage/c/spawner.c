/*
 * The spawner, before the Go runtime (sandbox/spawner_linux.go says what
 * a spawner is for). The keeper starts it as "incarnate:spawner" in the
 * session's user namespace and cgroup; this does what the Go spawner
 * does, in the same order, and answers in the same JSON, without a Go
 * start of its own: that start was a third of a cold run. It reads the
 * keeper's binary messages (sandbox/spawnwire_linux.go), in which the
 * keeper has worked out the confinement: this only applies it.
 *
 * It returns 0 only before it has read anything, to let the Go spawner
 * take over; from then on it exits, never returns. Included by stage.c.
 */

enum {
	SYS_dup2 = 33, SYS_clone = 56, SYS_execve = 59, SYS_exit = 60, SYS_wait4 = 61,
	SYS_chdir = 80, SYS_umask = 95, SYS_getppid = 110, SYS_setsid = 112,
	SYS_setgroups = 116, SYS_setresuid = 117, SYS_setresgid = 119,
	SYS_capget = 125, SYS_capset = 126, SYS_prctl = 157, SYS_keyctl = 250,
	SYS_unshare = 272, SYS_seccomp = 317, SYS_close_range = 436,
	SYS_landlock_create_ruleset = 444, SYS_landlock_restrict_self = 446,
	CLONE_NEWCGROUP = 0x02000000, CLONE_NEWUSER = 0x10000000, SIGCHLD = 17, WNOHANG = 1, O_WRONLY = 1,
	PR_SET_PDEATHSIG = 1, PR_CAPBSET_READ = 23, PR_CAPBSET_DROP = 24,
	PR_SET_NO_NEW_PRIVS = 38, PR_CAP_AMBIENT = 47, PR_CAP_AMBIENT_CLEAR_ALL = 4,
	KEYCTL_JOIN_SESSION_KEYRING = 1, CLOSE_RANGE_CLOEXEC = 4,
	SECCOMP_SET_MODE_FILTER = 1, TIOCSCTTY = 0x540E, SIGKILL = 9,
	/* sandbox.StatusStage, for what fails before the keeper said more */
	STATUS_STAGE = 100,
	STATUS_USERNS = 109, /* sandbox.StatusUserNamespace */
	/* Whose user namespace the spawner runs in: the one it was cloned
	 * into, or one it makes itself, there as root or as it came. */
	SP_KEEPERS_USERNS = 0, SP_OWN_USERNS = 1, SP_OWN_USERNS_ROOT = 2,
	SP_MSG = 1 << 20,   /* sandbox's maxMessage */
	SP_PTRS = SP_MSG / 5 + 4, /* a string takes 5 bytes or more of a message */
	SP_OPS = 16,
	SP_STACK = 4ul << 20,
};

/* One confinement op as the keeper worked it out. */
struct sp_op {
	struct str kind;
	u32 status, nested, last_cap, nfilter;
	u64 keep, scopes;
	const u8 *filter; /* nfilter struct sock_filter, as the kernel takes them */
};

struct spawner {
	int sock, sigfd;
	int keyring;               /* fresh_keyring: again before every fork */
	u32 st_chdir, st_cannot_exec, st_not_found, st_stage, st_keyring;
	struct sp_op ops[SP_OPS];
	u32 nops;
	char msg[SP_MSG];          /* the message being handled; strings point in */
	/* The job's environment, then its command (or the fallback being
	 * tried), NULL-terminated, pointing into msg. */
	char *ptrs[SP_PTRS];
	char **envp, **argv;
	u32 nenv;
	char path[4096 + 256];     /* the command found */
	char cwd[4096];
	char out[16384], errbuf[8192]; /* a reply, and the OpError in it */
};

/* A string in place: its length, its bytes and the NUL after them. */
static struct str sp_str(struct reader *rd)
{
	u32 n = get_u32(rd);
	struct str s = {0, 0};
	if (rd->bad || n >= rd->n - rd->off || rd->p[rd->off + n] != 0) {
		rd->bad = 1;
		return s;
	}
	s.p = (const char *)rd->p + rd->off;
	s.n = n;
	for (u32 i = 0; i < n; i++)
		if (s.p[i] == 0)
			rd->bad = 1;
	rd->off += n + 1;
	return s;
}

/* sp_list reads a list into v (NULL-terminated), which has room for cap
 * pointers; its length, or -1 if it is bad. */
static long sp_list(struct reader *rd, char **v, u32 cap)
{
	u32 n = get_u32(rd);
	if (rd->bad || n >= cap) {
		rd->bad = 1;
		return -1;
	}
	for (u32 i = 0; i < n && !rd->bad; i++)
		v[i] = (char *)sp_str(rd).p;
	v[n] = 0;
	return rd->bad ? -1 : (long)n;
}

/* ---- replies, in spawnerReply's JSON ---- */

static void sp_send(struct spawner *s, struct buf *b)
{
	if (!b->over)
		send_packet(s->sock, b->p, b->n, 0, 0);
}

/* An OpError, as Go marshals one (sandbox/errors.go). */
static void sp_operr(struct buf *b, struct str op, const char *step, struct str path, long errno_, const char *msg, u32 status)
{
	puts_(b, "{\"Op\":");
	putjson(b, op);
	puts_(b, ",\"Step\":");
	putjson(b, cstr(step));
	puts_(b, ",\"Path\":");
	putjson(b, path);
	puts_(b, ",\"Errno\":");
	putu(b, (u64)errno_);
	puts_(b, ",\"Status\":");
	putu(b, status);
	puts_(b, ",\"Msg\":");
	putjson(b, cstr(msg));
	puts_(b, "}");
}

/* sp_fail reports what failed before any job and exits with its status. */
static void sp_fail(struct spawner *s, struct str op, const char *step, long errno_, const char *msg, u32 status)
{
	struct buf b = {s->out, 0, sizeof s->out, 0};
	puts_(&b, "{\"error\":");
	sp_operr(&b, op, step, (struct str){"", 0}, errno_, msg, status);
	puts_(&b, "}");
	sp_send(s, &b);
	sys(SYS_exit_group, status, 0, 0);
}

/* ---- the confinement ---- */

static int sp_read_confine(struct spawner *s, u32 n)
{
	struct reader rd = {(const u8 *)s->msg, n, 5, 0};
	if (n < 5 || !has_prefix((struct str){s->msg, n}, cstr("incSC")))
		return 0;
	u32 nops = get_u32(&rd);
	if (nops > SP_OPS)
		return 0;
	for (s->nops = 0; s->nops < nops && !rd.bad; s->nops++) {
		struct sp_op *o = &s->ops[s->nops];
		*o = (struct sp_op){0};
		o->kind = sp_str(&rd);
		o->status = get_u32(&rd);
		if (eq(o->kind, cstr("landlock_scope"))) {
			o->scopes = get_u64(&rd);
		} else if (eq(o->kind, cstr("cap_bounds"))) {
			o->nested = get_u32(&rd);
			o->keep = get_u64(&rd);
			o->last_cap = get_u32(&rd);
		} else if (eq(o->kind, cstr("seccomp"))) {
			o->nested = get_u32(&rd);
			o->nfilter = get_u32(&rd);
			if (o->nfilter == 0 || o->nfilter > 0xffff || o->nfilter > (rd.n - rd.off) / 8) {
				rd.bad = 1;
				break;
			}
			o->filter = rd.p + rd.off;
			rd.off += o->nfilter * 8;
		} else if (!eq(o->kind, cstr("no_new_privs")) && !eq(o->kind, cstr("close_fds")) &&
			   !eq(o->kind, cstr("fresh_keyring"))) {
			return -1;
		}
	}
	s->st_chdir = get_u32(&rd);
	s->st_cannot_exec = get_u32(&rd);
	s->st_not_found = get_u32(&rd);
	s->st_stage = get_u32(&rd);
	return !rd.bad && rd.off == n;
}

struct cap_header { u32 version; int pid; };
struct cap_data { u32 effective, permitted, inheritable; };

/* As sandbox.dropBoundingCaps: the bounding set first, while CAP_SETPCAP
 * is still effective, then the ambient set, then the others. */
static long sp_caps(const struct sp_op *o)
{
	for (u64 c = 0; c <= o->last_cap && c < 64; c++) {
		if (o->keep >> c & 1)
			continue;
		long in = sys(SYS_prctl, PR_CAPBSET_READ, c, 0);
		if (in < 0)
			return in;
		if (in && (in = sys(SYS_prctl, PR_CAPBSET_DROP, c, 0)) < 0)
			return in;
	}
	long e = sys6(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0);
	if (e < 0)
		return e;
	struct cap_header h = {0x20080522, 0};
	struct cap_data d[2];
	if ((e = sys(SYS_capget, &h, d, 0)) < 0)
		return e;
	for (int i = 0; i < 2; i++) {
		u32 k = (u32)(o->keep >> (32 * i));
		d[i].effective &= k;
		d[i].permitted &= k;
		d[i].inheritable &= k;
	}
	return sys(SYS_capset, &h, d, 0);
}

static long sp_landlock(const struct sp_op *o)
{
	if (!o->scopes)
		return 0; /* below ABI 6: nothing to scope with */
	u64 attr[3] = {0, 0, o->scopes}; /* no access rights handled: scopes only */
	long fd = sys(SYS_landlock_create_ruleset, attr, sizeof attr, 0);
	if (fd < 0)
		return fd;
	long e = sys(SYS_landlock_restrict_self, fd, 0, 0);
	sys(SYS_close, fd, 0, 0);
	return e;
}

static long sp_keyring(void)
{
	return sys(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, 0, 0);
}

/* sp_confine applies the ops in order, each named in its error as the Go
 * spawner names it. */
static void sp_confine(struct spawner *s)
{
	for (u32 i = 0; i < s->nops; i++) {
		const struct sp_op *o = &s->ops[i];
		const char *step;
		long e;
		if (eq(o->kind, cstr("no_new_privs"))) {
			step = "prctl(PR_SET_NO_NEW_PRIVS)";
			e = sys6(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0);
		} else if (eq(o->kind, cstr("close_fds"))) {
			step = "close_range";
			e = sys(SYS_close_range, 3, ~0u, CLOSE_RANGE_CLOEXEC);
		} else if (eq(o->kind, cstr("fresh_keyring"))) {
			step = "keyctl(KEYCTL_JOIN_SESSION_KEYRING)";
			e = sp_keyring();
			s->keyring = 1;
			s->st_keyring = o->status;
		} else if (eq(o->kind, cstr("landlock_scope"))) {
			step = "landlock_restrict_self";
			e = sp_landlock(o);
		} else if (eq(o->kind, cstr("cap_bounds"))) {
			step = "prctl(PR_CAPBSET_DROP)";
			e = sp_caps(o);
		} else {
			struct { u16 len; u16 pad[3]; const u8 *filter; } prog = {(u16)o->nfilter, {0}, o->filter};
			step = "seccomp(SECCOMP_SET_MODE_FILTER)";
			e = sys(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
		}
		if (e < 0)
			sp_fail(s, o->kind, step, -e, "", o->status);
	}
}

/* ---- jobs ---- */

/* sp_clean cleans p[0:n] in place, as Go's path.Clean does, and returns
 * its new length: the output never outgrows what it has read. */
static u32 sp_clean(char *p, u32 n)
{
	int rooted = n > 0 && p[0] == '/';
	u32 r = rooted, w = rooted, dotdot = rooted;
	while (r < n) {
		if (p[r] == '/') {
			r++;
		} else if (p[r] == '.' && (r + 1 == n || p[r + 1] == '/')) {
			r++;
		} else if (p[r] == '.' && p[r + 1] == '.' && (r + 2 == n || p[r + 2] == '/')) {
			r += 2;
			if (w > dotdot) {
				for (w--; w > dotdot && p[w] != '/'; w--)
					;
			} else if (!rooted) {
				if (w > 0)
					p[w++] = '/';
				p[w++] = '.';
				p[w++] = '.';
				dotdot = w;
			}
		} else {
			if (w != (u32)rooted)
				p[w++] = '/';
			while (r < n && p[r] != '/')
				p[w++] = p[r++];
		}
	}
	if (w == 0)
		p[w++] = '.';
	p[w] = 0;
	return w;
}

/* sp_find is sandbox.lookPath: name itself when it has a slash (if it is
 * there), else the first executable regular file of that name along the
 * job's PATH, joined and cleaned as filepath.Join does. 0 means found;
 * otherwise the failure is in b. */
static int sp_find(struct spawner *s, const char *name, struct buf *b)
{
	struct kstat st;
	struct str n = cstr(name);
	for (u32 i = 0; i < n.n; i++)
		if (name[i] == '/') {
			if (sys4(SYS_newfstatat, AT_FDCWD, name, &st, 0) == -ENOENT) {
				sp_operr(b, cstr("exec"), "stat", n, ENOENT, "no such file in the session", s->st_not_found);
				return -1;
			}
			if (n.n >= sizeof s->path) { /* what execve would say */
				sp_operr(b, cstr("exec"), "execve", n, ENAMETOOLONG, "", s->st_cannot_exec);
				return -1;
			}
			memcpy(s->path, name, n.n + 1);
			return 0;
		}
	const char *search = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (char **e = s->envp; *e; e++)
		if (has_prefix(cstr(*e), cstr("PATH=")))
			search = *e + 5; /* the last one, as Go reads it */
	for (const char *p = search; *search;) {
		const char *q = p;
		while (*q && *q != ':')
			q++;
		struct str dir = {p, (u32)(q - p)};
		struct buf pb = {s->path, 0, sizeof s->path - 1, 0};
		putstr(&pb, dir.n ? dir : cstr("."));
		puts_(&pb, "/");
		putstr(&pb, n);
		if (!pb.over) {
			sp_clean(s->path, pb.n);
			if (sys4(SYS_newfstatat, AT_FDCWD, s->path, &st, 0) == 0 && (st.mode & S_IFMT) == S_IFREG && (st.mode & 0111))
				return 0;
		}
		if (!*q)
			break;
		p = q + 1;
	}
	sp_operr(b, cstr("exec"), "execvp", n, ENOENT, "not found in the session's PATH", s->st_not_found);
	return -1;
}

/* sp_exec is the child: what Go's fork does for the spawner's
 * SysProcAttr, then the exec. Its errno goes up the pipe. */
static void sp_exec(struct spawner *s, const int *fds, int tty, int ppid, int pipe_w)
{
	u64 none = 0;
	long e = sys4(SYS_rt_sigprocmask, 2 /* SIG_SETMASK */, &none, 0, 8);
	if (e >= 0)
		e = sys(SYS_setsid, 0, 0, 0);
	if (e >= 0)
		e = sys(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0);
	if (e >= 0 && sys(SYS_getppid, 0, 0, 0) != ppid)
		sys(SYS_kill, sys(SYS_getpid, 0, 0, 0), SIGKILL, 0);
	for (int i = 0; i < 3 && e >= 0; i++)
		e = sys(SYS_dup2, fds[i], i, 0);
	if (e >= 0 && tty)
		e = sys(SYS_ioctl, 0, TIOCSCTTY, 1);
	if (e >= 0)
		e = sys(SYS_execve, s->path, s->argv, s->envp);
	u32 err = (u32)-e;
	sys(SYS_write, pipe_w, &err, 4);
	sys(SYS_exit, 253, 0, 0);
}

/* sp_fork starts the job found in s->path; its pid, or the exec error in
 * b. Like Go's ForkExec, it waits until the exec happened or failed. */
static long sp_fork(struct spawner *s, const int *fds, int tty, struct buf *b)
{
	int p[2];
	long e = sys(SYS_pipe2, p, O_CLOEXEC, 0);
	if (e < 0) {
		sp_operr(b, cstr("exec"), "execve", cstr(s->path), -e, "", s->st_cannot_exec);
		return -1;
	}
	long ppid = sys(SYS_getpid, 0, 0, 0);
	long pid = sys6(SYS_clone, SIGCHLD, 0, 0, 0, 0, 0);
	if (pid == 0)
		sp_exec(s, fds, tty, (int)ppid, p[1]);
	sys(SYS_close, p[1], 0, 0);
	u32 err = 0;
	long n = pid < 0 ? 0 : sys(SYS_read, p[0], &err, 4);
	sys(SYS_close, p[0], 0, 0);
	if (pid < 0)
		err = (u32)-pid;
	else if (n != 4)
		return pid;
	else
		sys4(SYS_wait4, pid, 0, 0, 0);
	sp_operr(b, cstr("exec"), "execve", cstr(s->path), err, "", err == ENOENT ? s->st_not_found : s->st_cannot_exec);
	return -1;
}

/* sp_chdir is the job's Chdir op: dir, or else dir_else, or else /. */
static long sp_chdir(struct str dir, struct str dir_else, struct str *failed)
{
	*failed = dir.n ? dir : cstr("/");
	long e = sys(SYS_chdir, failed->p, 0, 0);
	if (e == -ENOENT && dir_else.n) {
		*failed = dir_else;
		if ((e = sys(SYS_chdir, dir_else.p, 0, 0)) == -ENOENT)
			e = sys(SYS_chdir, "/", 0, 0);
	}
	return e;
}

static void sp_skip_list(struct reader *rd)
{
	u32 n = get_u32(rd);
	for (u32 i = 0; i < n && !rd->bad; i++)
		sp_str(rd);
}

/* sp_start does one job up to its pid, or puts its failure in err. */
static long sp_start(struct spawner *s, u32 n, const int *fds, struct buf *out, struct buf *err)
{
	/* The environment first, which comes after the command and its
	 * fallbacks; the command after it in the table. */
	struct reader rd = {(const u8 *)s->msg, n, 13, 0};
	u32 argv_at = rd.off;
	sp_skip_list(&rd);
	u32 nfall = get_u32(&rd), fall_at = rd.off;
	for (u32 i = 0; i < nfall && !rd.bad; i++)
		sp_skip_list(&rd);
	long ne = sp_list(&rd, s->ptrs, SP_PTRS);
	s->envp = s->ptrs;
	s->nenv = ne < 0 ? 0 : (u32)ne;
	s->argv = s->ptrs + s->nenv + 1;
	struct reader ar = {(const u8 *)s->msg, n, argv_at, 0};
	int ok = ne >= 0 && sp_list(&ar, s->argv, SP_PTRS - s->nenv - 1) >= 0 && s->argv[0];
	struct str dir = sp_str(&rd), dir_else = sp_str(&rd);
	u32 umask = get_u32(&rd), tty = get_u32(&rd);
	get_u32(&rd); /* the terminal's size: the keeper sets it */
	if (!ok || nfall > SP_PTRS || rd.bad || rd.off != n || umask > 0777) {
		sp_operr(err, cstr("spawn"), "", (struct str){"", 0}, 0, "sandbox: garbled job", s->st_stage);
		return -1;
	}
	sys(SYS_umask, umask, 0, 0);
	struct str where;
	long e = sp_chdir(dir, dir_else, &where);
	if (e < 0) {
		sp_operr(err, cstr("chdir"), "chdir", where, -e, "", s->st_chdir);
		return -1;
	}
	struct kstat st;
	long cw;
	if (dir_else.n && sys4(SYS_newfstatat, AT_FDCWD, dir.p, &st, 0) == -ENOENT &&
	    (cw = sys(SYS_getcwd, s->cwd, sizeof s->cwd, 0)) > 0) {
		puts_(out, ",\"started_in\":");
		putjson(out, (struct str){s->cwd, (u32)cw - 1});
	}
	if (s->keyring && (e = sp_keyring()) < 0) {
		sp_operr(err, cstr("fresh_keyring"), "keyctl(KEYCTL_JOIN_SESSION_KEYRING)", (struct str){"", 0}, -e, "", s->st_keyring);
		return -1;
	}
	/* The command, then each fallback, until one is found; the first
	 * failure is the one reported. */
	struct reader fr = {(const u8 *)s->msg, n, fall_at, 0};
	int found = sp_find(s, s->argv[0], err) == 0;
	for (u32 i = 0; !found && i < nfall; i++) {
		char spare[8];
		struct buf later = {spare, 0, sizeof spare, 0};
		found = sp_list(&fr, s->argv, SP_PTRS - s->nenv - 1) >= 0 && s->argv[0] && sp_find(s, s->argv[0], &later) == 0;
	}
	if (!found)
		return -1;
	err->n = 0;
	err->over = 0;
	return sp_fork(s, fds, (int)tty, err);
}

/* sp_job answers one job message of n bytes with its three fds. */
static void sp_job(struct spawner *s, u32 n, const int *fds)
{
	struct reader rd = {(const u8 *)s->msg, n, 5, 0};
	u64 id = n >= 13 && has_prefix((struct str){s->msg, n}, cstr("incSJ")) ? get_u64(&rd) : 0;
	struct buf b = {s->out, 0, sizeof s->out, 0}, err = {s->errbuf, 0, sizeof s->errbuf, 0};
	puts_(&b, "{\"id\":");
	putu(&b, id);
	long pid = id ? sp_start(s, n, fds, &b, &err) : -1;
	sys(SYS_chdir, "/", 0, 0);
	if (!id)
		sp_operr(&err, cstr("spawn"), "", (struct str){"", 0}, 0, "sandbox: garbled job", s->st_stage);
	if (pid > 0) {
		puts_(&b, ",\"pid\":");
		putu(&b, (u64)pid);
	} else {
		if (err.over || err.n == 0) { /* a path too long to quote, or no word: the error without it */
			err = (struct buf){s->errbuf, 0, sizeof s->errbuf, 0};
			sp_operr(&err, cstr("spawn"), "", (struct str){"", 0}, 0, "sandbox: a path too long to report", s->st_stage);
		}
		puts_(&b, ",\"error\":");
		put(&b, err.p, err.n);
	}
	puts_(&b, "}");
	sp_send(s, &b);
}

/* ---- the spawner's life ---- */

/* sp_recv receives one message into s->msg, with at most three fds; its
 * length, 0 when the keeper is gone, -1 for one to ignore. */
static long sp_recv(struct spawner *s, int *fds, int *nfds)
{
	struct iovec iov = {s->msg, sizeof s->msg};
	u64 control[4];
	struct msghdr mh = {0};
	mh.iov = &iov;
	mh.iovlen = 1;
	mh.control = control;
	mh.controllen = sizeof control;
	long n = sys(SYS_recvmsg, s->sock, &mh, MSG_CMSG_CLOEXEC);
	*nfds = 0;
	u64 len = mh.controllen >= 16 ? control[0] : 0;
	u32 *c = (u32 *)control;
	if (n >= 0 && len > 16 && len <= sizeof control && c[2] == SOL_SOCKET && c[3] == SCM_RIGHTS)
		for (u64 k = 16; k + 4 <= len; k += 4) {
			int fd = *(int *)((char *)control + k);
			if (*nfds < 3)
				fds[(*nfds)++] = fd;
			else
				sys(SYS_close, fd, 0, 0);
		}
	if (n == 0 && *nfds == 0)
		return 0;
	if (n < 0 && n != -EAGAIN)
		return 0;
	if (n < 0 || (mh.flags & (MSG_TRUNC | MSG_CTRUNC)))
		return -1;
	return n;
}

/* sp_reap reports every child that has exited. */
static void sp_reap(struct spawner *s)
{
	struct { u32 signo; char rest[124]; } si;
	while (sys(SYS_read, s->sigfd, &si, sizeof si) > 0)
		;
	for (;;) {
		int ws = 0;
		long pid = sys4(SYS_wait4, -1, &ws, WNOHANG, 0);
		if (pid == -EINTR)
			continue;
		if (pid <= 0)
			return;
		/* sandbox.ExitCode: 128+signal for a signalled one */
		u32 code = (ws & 0x7f) ? 128 + (ws & 0x7f) : (ws >> 8) & 0xff;
		struct buf b = {s->out, 0, sizeof s->out, 0};
		puts_(&b, "{\"exited\":{\"pid\":");
		putu(&b, (u64)pid);
		puts_(&b, ",\"code\":");
		putu(&b, code);
		puts_(&b, "}}");
		sp_send(s, &b);
	}
}

static void spawner_run(int own_userns) __attribute__((noinline, noreturn));

/* spawner_main checks the stack limit in a frame of its own: spawner_run's
 * takes megabytes, which must not be entered unless the limit allows. */
static int spawner_main(int own_userns)
{
	struct { u64 cur, max; } lim;
	if (sys(SYS_getrlimit, RLIMIT_STACK, &lim, 0) != 0 || lim.cur < SP_STACK)
		return 0; /* the Go spawner, with its own stack */
	spawner_run(own_userns);
}

/* become_root takes id 0 of the user namespace the spawner made itself,
 * once the keeper has written its maps (it sends the confinement only
 * then), and no supplementary group of the keeper's. */
static void become_root(struct spawner *s)
{
	long e = sys(SYS_setgroups, 0, 0, 0);
	const char *step = "setgroups";
	if (e == 0 && (e = sys(SYS_setresgid, 0, 0, 0)) != 0)
		step = "setresgid";
	else if (e == 0 && (e = sys(SYS_setresuid, 0, 0, 0)) != 0)
		step = "setresuid";
	if (e != 0)
		sp_fail(s, cstr("user_namespace"), step, -e, "", STATUS_USERNS);
}

static void spawner_run(int own_userns)
{
	struct spawner s;
	s.sock = 3;
	s.keyring = 0;
	/* Only 0-2 (/dev/null) and the keeper's socket are the spawner's:
	 * anything else inherited the session could read through /proc. */
	sys(SYS_close_range, 4, ~0u, 0);
	/* Every signal's disposition as a new process's: an ignored one
	 * would stay ignored in every job, whoever started the keeper. */
	for (int sig = 1; sig <= 64; sig++) {
		struct ksigaction dfl = {0, 0, 0, 0};
		if (sig != SIGKILL && sig != 19 /* SIGSTOP */)
			sys4(SYS_rt_sigaction, sig, &dfl, 0, 8);
	}
	long fd = sys4(SYS_openat, AT_FDCWD, "/proc/self/comm", O_WRONLY | O_CLOEXEC, 0);
	if (fd >= 0) {
		sys(SYS_write, fd, "incarnate", 9);
		sys(SYS_close, fd, 0, 0);
	}
	/* Born in the session's cgroup, in the keeper's cgroup namespace:
	 * the session's own is rooted where the spawner is now. Asked to,
	 * it makes the session's user namespace too (which then owns the
	 * cgroup namespace), so that the keeper could vfork it: Go forks a
	 * child in a new user namespace without CLONE_VM, copying itself. */
	long e = sys(SYS_unshare, CLONE_NEWCGROUP | (own_userns ? CLONE_NEWUSER : 0), 0, 0);
	if (e < 0) {
		struct buf b = {s.out, 0, sizeof s.out, 0};
		puts_(&b, "{\"error\":");
		sp_operr(&b, cstr("spawner"), "unshare", (struct str){"", 0}, -e,
			 own_userns ? "user and cgroup namespaces" : "cgroup namespace", STATUS_STAGE);
		puts_(&b, "}");
		sp_send(&s, &b);
		sys(SYS_exit_group, STATUS_STAGE, 0, 0);
	}
	/* SIGCHLD by signalfd; the keeper's stop signals (kill(-1) from PID
	 * 1) blocked, as Go's spawner catches them: it stays to report the
	 * exits. Each child unblocks all before its exec. */
	u64 mask = 1ul << (SIGCHLD - 1) | 1ul << (SIGTERM - 1) | 1ul << (SIGHUP - 1) | 1ul << (SIGINT - 1);
	sys4(SYS_rt_sigprocmask, SIG_BLOCK, &mask, 0, 8);
	u64 chld = 1ul << (SIGCHLD - 1);
	s.sigfd = (int)sys4(SYS_signalfd4, -1, &chld, 8, SFD_NONBLOCK | SFD_CLOEXEC);
	send_packet(s.sock, "{}", 2, 0, 0); /* running: the keeper may pivot */
	int fds[3], nfds;
	long n = sp_recv(&s, fds, &nfds);
	close_fds(fds, nfds);
	if (n <= 0)
		sys(SYS_exit_group, STATUS_STAGE, 0, 0);
	int ok = sp_read_confine(&s, (u32)n);
	if (ok <= 0) {
		struct str kind = ok < 0 ? s.ops[s.nops].kind : cstr("");
		struct buf m = {s.cwd, 0, sizeof s.cwd, 0};
		puts_(&m, ok < 0 ? "op \"" : "garbled spawner message");
		if (ok < 0) {
			putvisible(&m, kind);
			puts_(&m, "\" is not one a spawner applies");
		}
		s.cwd[m.over ? 0 : m.n] = 0;
		sp_fail(&s, cstr("spawner"), "", 0, s.cwd, STATUS_STAGE);
	}
	if (s.sigfd < 0)
		sp_fail(&s, cstr("spawner"), "signalfd", -s.sigfd, "", STATUS_STAGE);
	if (own_userns == SP_OWN_USERNS_ROOT)
		become_root(&s);
	sp_confine(&s);
	send_packet(s.sock, "{\"ready\":true}", 14, 0, 0);
	for (;;) {
		struct pollfd p[2] = {{s.sock, POLLIN, 0}, {s.sigfd, POLLIN, 0}};
		/* Without a signal handler nothing interrupts it: an error is a
		 * refusal (a filter's), and there is no way on. */
		if (sys(SYS_poll, p, 2, -1) < 0)
			sys(SYS_exit_group, STATUS_STAGE, 0, 0);
		if (p[1].revents)
			sp_reap(&s);
		if (!p[0].revents)
			continue;
		n = sp_recv(&s, fds, &nfds);
		if (n == 0)
			sys(SYS_exit_group, 0, 0, 0); /* the keeper is gone: so is the session */
		if (n > 0 && nfds == 3)
			sp_job(&s, (u32)n, fds);
		close_fds(fds, nfds);
	}
}
