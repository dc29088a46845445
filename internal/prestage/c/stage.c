/*
 * The stage before the Go runtime: `incarnate run NAME [--] CMD...` with
 * no flags, and `incarnate enter [--shell SH] NAME` on a terminal, against
 * a keeper that already runs. See doc.go for the why.
 *
 * Built freestanding (no libc) into one flat, position-independent blob
 * that stage_amd64.s carries; the process entry point calls stage_main
 * with the initial stack pointer before the Go runtime exists. It returns
 * 0 to let Go start as usual ("fall through"), which it does for anything
 * it does not handle or that goes wrong before the command runs: Go then
 * does the whole thing again, with its checks and its messages. Once the
 * keeper says the command runs, the stage relays until it exits and never
 * returns.
 *
 * Rules: no writable globals (the blob lives in read-only text), no
 * allocation (every buffer is on the stack, sized up front), and every
 * length read from a file or a socket is checked before use.
 */

typedef unsigned long u64;
typedef long i64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

/* ---- system calls ---- */

enum {
	SYS_read = 0, SYS_write = 1, SYS_close = 3, SYS_fstat = 5, SYS_poll = 7,
	SYS_rt_sigaction = 13, SYS_rt_sigprocmask = 14, SYS_getpid = 39,
	SYS_socket = 41, SYS_connect = 42, SYS_sendmsg = 46, SYS_recvmsg = 47,
	SYS_kill = 62, SYS_fcntl = 72, SYS_getcwd = 79, SYS_geteuid = 107,
	SYS_clock_gettime = 228, SYS_exit_group = 231, SYS_openat = 257,
	SYS_newfstatat = 262, SYS_utimensat = 280, SYS_signalfd4 = 289,
	SYS_pipe2 = 293, SYS_getrlimit = 97, SYS_ioctl = 16,
};

static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}
#define sys(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define sys4(n, a, b, c, d) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

enum {
	EINTR = 4, EAGAIN = 11, EPIPE = 32, ERANGE = 34, ENAMETOOLONG = 36, EBADF = 9,
	O_RDONLY = 0, O_NOFOLLOW = 0400000, O_CLOEXEC = 02000000, O_NONBLOCK = 04000,
	AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100,
	AF_UNIX = 1, SOCK_SEQPACKET = 5, SOCK_CLOEXEC = 02000000,
	SOL_SOCKET = 1, SCM_RIGHTS = 1, MSG_TRUNC = 0x20, MSG_CTRUNC = 0x8,
	MSG_CMSG_CLOEXEC = 0x40000000, MSG_NOSIGNAL = 0x4000,
	POLLIN = 1, POLLOUT = 4, POLLERR = 8, POLLHUP = 16, POLLNVAL = 32,
	S_IFMT = 0170000, S_IFDIR = 0040000, S_IFREG = 0100000, S_IFSOCK = 0140000,
	F_GETFD = 1, F_SETFL = 4, SIG_BLOCK = 0, SIGPIPE = 13, CLOCK_MONOTONIC = 1,
	SFD_NONBLOCK = 04000, SFD_CLOEXEC = 02000000, RLIMIT_STACK = 3,
	ENOENT = 2, EIO = 5,
	SIGHUP = 1, SIGINT = 2, SIGTERM = 15, SIGWINCH = 28,
	TCGETS = 0x5401, TCSETS = 0x5402, TIOCGWINSZ = 0x5413, TIOCSWINSZ = 0x5414,
};

struct kstat {
	u64 dev, ino, nlink;
	u32 mode, uid, gid, pad0;
	u64 rdev;
	i64 size, blksize, blocks;
	i64 times[6];
	i64 unused[3];
};

struct iovec { void *base; u64 len; };
struct msghdr {
	void *name; u32 namelen; u32 pad0;
	struct iovec *iov; u64 iovlen;
	void *control; u64 controllen;
	int flags; int pad1;
};
struct sockaddr_un { u16 family; char path[108]; };
struct pollfd { int fd; short events, revents; };
struct timespec { i64 sec, nsec; };
struct ksigaction { u64 handler, flags, restorer, mask; };

/* The compiler may call these for struct copies and zeroing. */
void *memset(void *d, int c, u64 n)
{
	u8 *p = d;
	while (n--)
		*p++ = (u8)c;
	return d;
}

void *memcpy(void *d, const void *s, u64 n)
{
	u8 *p = d;
	const u8 *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

/* ---- strings: a pointer and a length, never NUL-terminated ---- */

struct str { const char *p; u32 n; };

static u64 cstrlen(const char *s)
{
	u64 n = 0;
	while (s[n])
		n++;
	return n;
}

static struct str cstr(const char *s) { return (struct str){s, (u32)cstrlen(s)}; }

static int eq(struct str a, struct str b)
{
	if (a.n != b.n)
		return 0;
	for (u32 i = 0; i < a.n; i++)
		if (a.p[i] != b.p[i])
			return 0;
	return 1;
}

static int has_prefix(struct str s, struct str pre)
{
	return s.n >= pre.n && eq((struct str){s.p, pre.n}, pre);
}

/* name of NAME=VALUE (the whole string when it has no '=') */
static struct str env_name(struct str kv)
{
	for (u32 i = 0; i < kv.n; i++)
		if (kv.p[i] == '=')
			return (struct str){kv.p, i};
	return kv;
}

/* The first entry of envp named name (Go keeps the first of duplicates). */
static const char *getenv_kv(char **envp, struct str name)
{
	for (; *envp; envp++) {
		struct str kv = cstr(*envp);
		if (kv.n > name.n && kv.p[name.n] == '=' && has_prefix(kv, name))
			return *envp;
	}
	return 0;
}

static const char *getenv_val(char **envp, const char *name)
{
	struct str n = cstr(name);
	const char *kv = getenv_kv(envp, n);
	return kv ? kv + n.n + 1 : 0;
}

/* ---- a bounded output buffer: overflow is remembered, not written ---- */

struct buf { char *p; u32 n, cap; int over; };

static void put(struct buf *b, const char *s, u64 n)
{
	if (b->over || n > b->cap - b->n) {
		b->over = 1;
		return;
	}
	memcpy(b->p + b->n, s, n);
	b->n += (u32)n;
}

static void puts_(struct buf *b, const char *s) { put(b, s, cstrlen(s)); }
static void putstr(struct buf *b, struct str s) { put(b, s.p, s.n); }

static void putu(struct buf *b, u64 v)
{
	char d[24];
	int i = 24;
	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put(b, d + i, 24 - i);
}

static const char hexdig[] = "0123456789abcdef";

/* A JSON string. Bytes of 0x80 and up pass as they are: the keeper's
 * decoder makes of an invalid sequence what Go's encoder would have. */
static void putjson(struct buf *b, struct str s)
{
	put(b, "\"", 1);
	for (u32 i = 0; i < s.n; i++) {
		u8 c = (u8)s.p[i];
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			put(b, e, 2);
		} else if (c < 0x20) {
			char e[6] = {'\\', 'u', '0', '0', hexdig[c >> 4], hexdig[c & 15]};
			put(b, e, 6);
		} else {
			put(b, (const char *)&c, 1);
		}
	}
	put(b, "\"", 1);
}

/* Text for the terminal: printable ASCII as it is, any other byte as \xNN. */
static void putvisible(struct buf *b, struct str s)
{
	for (u32 i = 0; i < s.n; i++) {
		u8 c = (u8)s.p[i];
		if (c >= 0x20 && c < 0x7f) {
			put(b, (const char *)&c, 1);
		} else {
			char e[4] = {'\\', 'x', hexdig[c >> 4], hexdig[c & 15]};
			put(b, e, 4);
		}
	}
}

static int printable_ascii(struct str s)
{
	for (u32 i = 0; i < s.n; i++)
		if ((u8)s.p[i] < 0x20 || (u8)s.p[i] >= 0x7f)
			return 0;
	return 1;
}

static void write_all(int fd, const char *p, u64 n);

/* ---- why the stage steps aside, for INCARNATE_STAGE=must ---- */

struct run {
	int must; /* INCARNATE_STAGE=must: stepping aside is an error */
};

static int aside(struct run *r, const char *why)
{
	if (r->must) {
		char m[256];
		struct buf b = {m, 0, sizeof m, 0};
		puts_(&b, "incarnate: stage: ");
		puts_(&b, why);
		puts_(&b, "\n");
		write_all(2, b.p, b.n);
		sys(SYS_exit_group, 98, 0, 0);
	}
	return 0;
}

/* ---- the ticket the Go side left beside the keeper's socket ---- */

enum { TICKET_MAX = 64 << 10, LIST_MAX = 256 };

struct list { struct str s[LIST_MAX]; u32 n; };

struct ticket {
	u32 euid;
	u64 sock_dev, sock_ino; /* the socket it was written beside */
	struct str root, name, entered;
	struct list head, pass, prefixes, specs, tail;
	/* for enter: the session's shell, and config.toml as Go found it */
	struct str shell, config, config_shell;
	u64 stamp[3];
};

struct reader { const u8 *p; u32 n, off; int bad; };

static u32 get_u32(struct reader *rd)
{
	if (rd->bad || rd->n - rd->off < 4) {
		rd->bad = 1;
		return 0;
	}
	const u8 *q = rd->p + rd->off;
	rd->off += 4;
	return (u32)q[0] | (u32)q[1] << 8 | (u32)q[2] << 16 | (u32)q[3] << 24;
}

static u64 get_u64(struct reader *rd)
{
	u64 lo = get_u32(rd);
	return lo | (u64)get_u32(rd) << 32;
}

static struct str get_str(struct reader *rd)
{
	u32 n = get_u32(rd);
	struct str s = {0, 0};
	if (rd->bad || n > rd->n - rd->off) {
		rd->bad = 1;
		return s;
	}
	s.p = (const char *)rd->p + rd->off;
	s.n = n;
	rd->off += n;
	for (u32 i = 0; i < n; i++)
		if (s.p[i] == 0)
			rd->bad = 1; /* a NUL would cut a path short */
	return s;
}

static void get_list(struct reader *rd, struct list *l)
{
	u32 n = get_u32(rd);
	if (n > LIST_MAX) {
		rd->bad = 1;
		return;
	}
	for (l->n = 0; l->n < n && !rd->bad; l->n++)
		l->s[l->n] = get_str(rd);
}

static const char ticket_magic[8] = {'i', 'n', 'c', 'T', 2, 0, 0, 0};

/* parse_ticket reads buf[0:n] into t; 0 means it is not a ticket. */
static int parse_ticket(const u8 *buf, u32 n, struct ticket *t)
{
	struct reader rd = {buf, n, 0, 0};
	if (n < 8)
		return 0;
	for (int i = 0; i < 8; i++)
		if (buf[i] != (u8)ticket_magic[i])
			return 0;
	rd.off = 8;
	t->euid = get_u32(&rd);
	t->sock_dev = get_u64(&rd);
	t->sock_ino = get_u64(&rd);
	t->root = get_str(&rd);
	t->name = get_str(&rd);
	t->entered = get_str(&rd);
	get_list(&rd, &t->head);
	get_list(&rd, &t->pass);
	get_list(&rd, &t->prefixes);
	get_list(&rd, &t->specs);
	get_list(&rd, &t->tail);
	t->shell = get_str(&rd);
	t->config = get_str(&rd);
	t->config_shell = get_str(&rd);
	for (int k = 0; k < 3; k++)
		t->stamp[k] = get_u64(&rd);
	return !rd.bad && rd.off == n && t->entered.n > 0 && t->entered.p[0] == '/';
}

/* ---- small system helpers ---- */

static void write_all(int fd, const char *p, u64 n)
{
	while (n > 0) {
		long w = sys(SYS_write, fd, p, n);
		if (w == -EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (u64)w;
	}
}

/* A C path in a fixed buffer; 0 when it does not fit. */
static const char *cpath(char *dst, u32 cap, struct str a, struct str b)
{
	if ((u64)a.n + b.n + 1 > cap)
		return 0;
	memcpy(dst, a.p, a.n);
	memcpy(dst + a.n, b.p, b.n);
	dst[a.n + b.n] = 0;
	return dst;
}

/* A directory of ours that nobody else may enter (Go's privateDir). */
static int private_dir(const char *path, u32 euid)
{
	struct kstat st;
	if (sys4(SYS_newfstatat, AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return 0;
	return (st.mode & S_IFMT) == S_IFDIR && st.uid == euid && (st.mode & 077) == 0;
}

/* An absolute path with no empty, "." or ".." element and no trailing
 * slash: what Go's filepath.Abs would return unchanged. */
static int clean_abs(struct str p)
{
	if (p.n == 0 || p.p[0] != '/')
		return 0;
	if (p.n == 1)
		return 1;
	if (p.p[p.n - 1] == '/')
		return 0;
	for (u32 i = 0; i < p.n; i++) {
		if (p.p[i] != '/')
			continue;
		u32 j = i + 1;
		while (j < p.n && p.p[j] != '/')
			j++;
		u32 len = j - i - 1;
		if (len == 0 || (len == 1 && p.p[i + 1] == '.') ||
		    (len == 2 && p.p[i + 1] == '.' && p.p[i + 2] == '.'))
			return 0;
	}
	return 1;
}

static u64 fnv64a(struct str a, struct str b)
{
	u64 h = 14695981039346656037ul;
	for (u32 i = 0; i < a.n; i++)
		h = (h ^ (u8)a.p[i]) * 1099511628211ul;
	h = (h ^ 0) * 1099511628211ul;
	for (u32 i = 0; i < b.n; i++)
		h = (h ^ (u8)b.p[i]) * 1099511628211ul;
	return h;
}

static i64 now_ms(void)
{
	struct timespec ts;
	sys(SYS_clock_gettime, CLOCK_MONOTONIC, &ts, 0);
	return ts.sec * 1000 + ts.nsec / 1000000;
}

/* ---- the request ---- */

enum { ENV_MAX = 4096 };

#define STACK_NEEDED (4ul << 20)

struct env { struct str kv[ENV_MAX]; u32 n; int over; };

static void env_add(struct env *e, struct str kv)
{
	if (e->n == ENV_MAX) {
		e->over = 1;
		return;
	}
	e->kv[e->n++] = kv;
}

/* env_set drops every entry named as kv is, then appends kv. */
static void env_set(struct env *e, struct str kv)
{
	struct str name = env_name(kv);
	u32 k = 0;
	for (u32 i = 0; i < e->n; i++)
		if (!eq(env_name(e->kv[i]), name))
			e->kv[k++] = e->kv[i];
	e->n = k;
	env_add(e, kv);
}

static int passed(const struct ticket *t, struct str name)
{
	for (u32 i = 0; i < t->pass.n; i++)
		if (eq(name, t->pass.s[i]))
			return 1;
	for (u32 i = 0; i < t->prefixes.n; i++)
		if (has_prefix(name, t->prefixes.s[i]))
			return 1;
	return 0;
}

/* The environment as session.Environ and Exec make it: the session's
 * own entries (with SHELL=, for enter), the caller's terminal and locale
 * ones, the session's --env specs (a bare NAME passes the caller's),
 * enter's prompt unless the specs gave one, then the tail. An extra of
 * no length is not added. */
static void build_env(struct env *e, const struct ticket *t, char **envp, struct str shell_kv, struct str ps1_kv)
{
	for (u32 i = 0; i < t->head.n; i++)
		env_add(e, t->head.s[i]);
	if (shell_kv.n)
		env_add(e, shell_kv);
	for (char **v = envp; *v; v++) {
		struct str kv = cstr(*v), name = env_name(kv);
		if (name.n == kv.n || !passed(t, name))
			continue;
		if (getenv_kv(envp, name) != *v)
			continue; /* a later duplicate, which Go drops */
		env_add(e, kv);
	}
	for (u32 i = 0; i < t->specs.n; i++) {
		struct str spec = t->specs.s[i], name = env_name(spec);
		if (name.n < spec.n) {
			env_set(e, spec);
		} else if (getenv_kv(envp, name)) {
			env_set(e, cstr(getenv_kv(envp, name)));
		}
	}
	int has_ps1 = 0;
	for (u32 i = 0; i < e->n; i++)
		has_ps1 |= eq(env_name(e->kv[i]), cstr("PS1")) && e->kv[i].n > 3;
	if (ps1_kv.n && !has_ps1)
		env_add(e, ps1_kv);
	for (u32 i = 0; i < t->tail.n; i++)
		env_add(e, t->tail.s[i]);
}

/* Go's os.Getwd: $PWD when it names ".", else getcwd(2). */
static struct str working_dir(char **envp, char *buf, u32 cap)
{
	const char *pwd = getenv_val(envp, "PWD");
	struct kstat dot, d;
	if (pwd && pwd[0] == '/' && sys4(SYS_newfstatat, AT_FDCWD, ".", &dot, 0) == 0 &&
	    sys4(SYS_newfstatat, AT_FDCWD, pwd, &d, 0) == 0 && dot.dev == d.dev && dot.ino == d.ino)
		return cstr(pwd);
	long n = sys(SYS_getcwd, buf, cap, 0);
	if (n == -ERANGE || n == -ENAMETOOLONG)
		return (struct str){buf, 0}; /* too long: Go's to refuse */
	if (n <= 1 || buf[0] != '/')
		return (struct str){0, 0};
	return (struct str){buf, (u32)(n - 1)};
}

/* What to start: run's command, or enter's shell on a terminal. */
struct spawn {
	char **cmd;       /* run: the command; 0 for enter */
	struct str shell; /* enter: the shell */
	int fallback;     /* enter: /bin/sh where the session lacks the shell */
	u16 rows, cols;   /* enter: the terminal's size, 0 when unknown */
};

static void request(struct buf *b, const struct spawn *sp, const struct env *e, struct str dir, struct str dir_else)
{
	puts_(b, "{\"spawn\":{\"argv\":[");
	for (char **a = sp->cmd; a && *a; a++) {
		if (a != sp->cmd)
			puts_(b, ",");
		putjson(b, cstr(*a));
	}
	if (!sp->cmd)
		putjson(b, sp->shell);
	puts_(b, "],");
	if (sp->fallback)
		puts_(b, "\"fallback\":[[\"/bin/sh\"]],");
	puts_(b, "\"env\":[");
	for (u32 i = 0; i < e->n; i++) {
		if (i)
			puts_(b, ",");
		putjson(b, e->kv[i]);
	}
	puts_(b, "],\"dir\":");
	putjson(b, dir);
	puts_(b, ",\"dir_else\":");
	putjson(b, dir_else);
	puts_(b, ",\"umask\":18");
	if (!sp->cmd) {
		puts_(b, ",\"tty\":true");
		if (sp->rows)
			puts_(b, ",\"rows\":"), putu(b, sp->rows);
		if (sp->cols)
			puts_(b, ",\"cols\":"), putu(b, sp->cols);
	}
	puts_(b, "}}");
}

/* ---- the keeper's replies: flat JSON objects ---- */

struct reply {
	int error;        /* an "error" key: the command did not start */
	int has_exit;
	long exit;
	struct str started_in, stopped;
	char text[1024];  /* started_in, unescaped (cut to fit) */
	char note[512];   /* stopped, unescaped */
};

static u32 skip_value(const char *p, u32 n, u32 i);

/* parse_string reads the string at p[i] (past its quote) into out when
 * out is not 0, and returns the index after its closing quote, or n+1. */
static u32 parse_string(const char *p, u32 n, u32 i, struct buf *out)
{
	for (; i < n; i++) {
		char c = p[i];
		if (c == '"')
			return i + 1;
		if ((u8)c < 0x20)
			return n + 1;
		if (c != '\\') {
			if (out)
				put(out, &c, 1);
			continue;
		}
		if (++i >= n)
			return n + 1;
		char e = p[i], lit = 0;
		switch (e) {
		case '"': case '\\': case '/': lit = e; break;
		case 'b': lit = '\b'; break;
		case 'f': lit = '\f'; break;
		case 'n': lit = '\n'; break;
		case 'r': lit = '\r'; break;
		case 't': lit = '\t'; break;
		case 'u': {
			if (n - i < 5)
				return n + 1;
			u32 v = 0;
			for (int k = 1; k <= 4; k++) {
				char h = p[i + k];
				u32 d = h >= '0' && h <= '9' ? (u32)(h - '0') :
					h >= 'a' && h <= 'f' ? (u32)(h - 'a' + 10) :
					h >= 'A' && h <= 'F' ? (u32)(h - 'A' + 10) : 16;
				if (d == 16)
					return n + 1;
				v = v << 4 | d;
			}
			if (out && v < 0x80) {
				lit = (char)v;
				put(out, &lit, 1);
			} else if (out) {
				/* Not ASCII: shown as the escape itself, which is how
				 * Go's termtext writes a rune it will not print. */
				put(out, p + i - 1, 6);
			}
			i += 4;
			continue;
		}
		default:
			return n + 1;
		}
		if (out)
			put(out, &lit, 1);
	}
	return n + 1;
}

/* skip_value passes over any JSON value at p[i], nesting bounded. */
static u32 skip_value(const char *p, u32 n, u32 i)
{
	int depth = 0;
	do {
		if (i >= n)
			return n + 1;
		char c = p[i];
		if (c == '"') {
			i = parse_string(p, n, i + 1, 0);
			if (i > n)
				return i;
			continue;
		}
		if (c == '{' || c == '[') {
			if (++depth > 32)
				return n + 1;
		} else if (c == '}' || c == ']') {
			if (--depth < 0)
				return n + 1;
		} else if (depth == 0 && (c == ',')) {
			return i;
		}
		i++;
	} while (depth > 0 || (i < n && p[i] != ',' && p[i] != '}'));
	return i;
}

/* parse_reply reads one reply; 0 means it is not one. */
static int parse_reply(const char *p, u32 n, struct reply *r)
{
	struct buf text = {r->text, 0, sizeof r->text, 0};
	struct buf note = {r->note, 0, sizeof r->note, 0};
	r->error = r->has_exit = 0;
	r->started_in = r->stopped = (struct str){0, 0};
	if (n < 2 || p[0] != '{')
		return 0;
	u32 i = 1;
	if (p[i] == '}')
		return i + 1 == n;
	for (;;) {
		if (i >= n || p[i] != '"')
			return 0;
		u32 k0 = i + 1, k1 = parse_string(p, n, k0, 0);
		if (k1 > n || k1 >= n || p[k1] != ':')
			return 0;
		struct str key = {p + k0, k1 - 1 - k0};
		i = k1 + 1;
		if (eq(key, cstr("error"))) {
			r->error = 1;
		} else if (eq(key, cstr("started_in")) && i < n && p[i] == '"') {
			/* A path longer than text is shown cut (put keeps what fits). */
			u32 e = parse_string(p, n, i + 1, &text);
			if (e > n)
				return 0;
			r->started_in = (struct str){r->text, text.n};
			i = e;
			goto next;
		} else if (eq(key, cstr("stopped")) && i < n && p[i] == '"') {
			/* The session was stopped from outside: said at the end. */
			u32 e = parse_string(p, n, i + 1, &note);
			if (e > n)
				return 0;
			r->stopped = (struct str){r->note, note.n};
			i = e;
			goto next;
		} else if (eq(key, cstr("exit")) && i < n) {
			int neg = p[i] == '-';
			u32 j = i + neg;
			long v = 0;
			if (j >= n || p[j] < '0' || p[j] > '9')
				return 0;
			for (; j < n && p[j] >= '0' && p[j] <= '9'; j++) {
				if (v > 1000000000)
					return 0;
				v = v * 10 + (p[j] - '0');
			}
			r->has_exit = 1;
			r->exit = neg ? -v : v;
			i = j;
			goto next;
		}
		i = skip_value(p, n, i);
		if (i > n)
			return 0;
	next:
		if (i >= n)
			return 0;
		if (p[i] == '}')
			return i + 1 == n;
		if (p[i] != ',')
			return 0;
		i++;
	}
}

/* recv_reply receives one packet into buf and parses it. It returns 1
 * for a reply, 0 for a closed connection, -1 for anything else. A lone
 * fd that came with it is kept in *fd when fd is not 0 (enter's pty
 * master); any other is closed. */
static int recv_reply(int sock, char *buf, u32 cap, struct reply *r, int *fd)
{
	struct iovec iov = {buf, cap};
	u64 control[8];
	struct msghdr mh = {0};
	mh.iov = &iov;
	mh.iovlen = 1;
	mh.control = control;
	mh.controllen = sizeof control;
	long n;
	do
		n = sys(SYS_recvmsg, sock, &mh, MSG_CMSG_CLOEXEC);
	while (n == -EINTR);
	if (mh.controllen > 0 && n >= 0) {
		u32 *c = (u32 *)control;
		u64 len = *(u64 *)control;
		if (len == 20 && fd && *fd < 0 && c[2] == SOL_SOCKET && c[3] == SCM_RIGHTS)
			*fd = (int)c[4];
		else if (len > 16 && len <= sizeof control && c[2] == SOL_SOCKET && c[3] == SCM_RIGHTS)
			for (u64 k = 16; k + 4 <= len; k += 4)
				sys(SYS_close, *(int *)((char *)control + k), 0, 0);
	}
	if (n == 0)
		return 0;
	if (n < 0 || (mh.flags & (MSG_TRUNC | MSG_CTRUNC)))
		return -1;
	return parse_reply(buf, (u32)n, r) ? 1 : -1;
}

static int send_packet(int sock, const char *p, u32 n, const int *fds, int nfds)
{
	struct iovec iov = {(void *)p, n};
	u64 control[4] = {0};
	struct msghdr mh = {0};
	mh.iov = &iov;
	mh.iovlen = 1;
	if (nfds > 0) {
		u32 *c = (u32 *)control;
		*(u64 *)control = 16 + 4 * (u64)nfds;
		c[2] = SOL_SOCKET;
		c[3] = SCM_RIGHTS;
		for (int k = 0; k < nfds; k++)
			c[4 + k] = (u32)fds[k];
		mh.control = control;
		mh.controllen = 16 + 8 * (((u64)nfds * 4 + 7) / 8);
	}
	long w = -EINTR;
	/* bounded: only a handler interrupts, and a filter could say EINTR
	 * for ever (the spawner installs the keeper's) */
	for (int tries = 0; w == -EINTR && tries < 100; tries++)
		w = sys(SYS_sendmsg, sock, &mh, MSG_NOSIGNAL);
	return w == (long)n;
}

/* ---- the relay, once the command runs ---- */

enum { CHUNK = 64 << 10, QUIET_MS = 100, DRAIN_MS = 2000, PIPE_BUF = 4096 };

/* The signals Go's client passes on (sandbox.ForwardedSignals). */
static const u64 forwarded = 1ul << (2 - 1) | 1ul << (15 - 1) | 1ul << (1 - 1) |
			     1ul << (3 - 1) | 1ul << (10 - 1) | 1ul << (12 - 1) | 1ul << (28 - 1);

/* die_of_sigpipe ends the process as Go's runtime does when stdout or
 * stderr is a closed pipe. */
static void die_of_sigpipe(void)
{
	struct ksigaction sa = {0, 0, 0, 0};
	sys4(SYS_rt_sigaction, SIGPIPE, &sa, 0, 8);
	sys(SYS_kill, sys(SYS_getpid, 0, 0, 0), SIGPIPE, 0);
	sys(SYS_exit_group, 2, 0, 0);
}

struct relay;
static void on_signals(struct relay *r);
static long take_exit(struct relay *r, long status);
static int sigfd_of(struct relay *r);

/* out_all writes p to our stdout or stderr. It waits for room with
 * poll, forwarding signals meanwhile, and writes a pipe's atomic piece
 * at a time, which never blocks once poll says there is room: a reader
 * that is slow to take the output must not hold up a ^C, nor make a
 * non-blocking stdout spin. */
static void out_all(struct relay *r, int fd, const char *p, u64 n)
{
	while (n > 0) {
		struct pollfd pw[2] = {{fd, POLLOUT, 0}, {sigfd_of(r), POLLIN, 0}};
		if (sys(SYS_poll, pw, pw[1].fd >= 0 ? 2 : 1, -1) < 0)
			continue;
		if (pw[1].revents)
			on_signals(r);
		if (!pw[0].revents)
			continue;
		long w = sys(SYS_write, fd, p, n < PIPE_BUF ? n : PIPE_BUF);
		if (w == -EINTR || w == -EAGAIN)
			continue;
		if (w == -EPIPE)
			die_of_sigpipe();
		if (w <= 0)
			return;
		p += w;
		n -= (u64)w;
	}
}

/* The kernel's struct termios, with room to spare. */
struct termios { u32 iflag, oflag, cflag, lflag; u8 line, cc[19]; u8 spare[16]; };
struct winsize { u16 rows, cols, x, y; };

struct relay {
	struct str name;   /* the session's, for the note at the end */
	int sock, sigfd;
	int tty;           /* enter: to is the pty's master, and ours to keep */
	struct termios saved; /* enter: our terminal as it was */
	int in, to;        /* our stdin, and the pipe to the command's */
	int from[2];       /* the pipes from its stdout and stderr */
	i64 last[2];       /* when each last gave something, once draining */
	char pend[CHUNK];  /* stdin read, not yet taken by the command */
	u32 pendoff, pendn;
	char io[CHUNK];
	char msg[64 << 10]; /* a reply: a few bytes, unless a hostile path */
	char stopped[512]; /* Reply.Stopped, copied from the exit reply */
	u32 stoppedn;
};

static int sigfd_of(struct relay *r) { return r->sigfd; }

static void close_fd(int *fd)
{
	if (*fd >= 0)
		sys(SYS_close, *fd, 0, 0);
	*fd = -1;
}

static void pass_stdin(struct relay *r, short in_ev, short to_ev)
{
	if (r->pendn == 0 && (in_ev & (POLLIN | POLLHUP | POLLERR | POLLNVAL))) {
		long n = sys(SYS_read, r->in, r->pend, CHUNK);
		if (n == -EINTR || n == -EAGAIN)
			return;
		if (n <= 0) {
			r->in = -1; /* not ours to close: fd 0 */
			if (!r->tty)
				close_fd(&r->to);
			return;
		}
		r->pendoff = 0;
		r->pendn = (u32)n;
		to_ev = POLLOUT;
	}
	if (r->pendn > 0 && (to_ev & (POLLOUT | POLLERR | POLLHUP | POLLNVAL))) {
		long w = sys(SYS_write, r->to, r->pend + r->pendoff, r->pendn);
		if (w == -EAGAIN || w == -EINTR)
			return;
		if (w < 0) { /* the command closed its stdin (or its terminal) */
			r->in = -1;
			if (!r->tty)
				close_fd(&r->to);
			r->pendn = 0;
			return;
		}
		r->pendoff += (u32)w;
		r->pendn -= (u32)w;
	}
}

static void pass_output(struct relay *r, int k, i64 now)
{
	long n = sys(SYS_read, r->from[k], r->io, CHUNK);
	if (n == -EINTR || n == -EAGAIN)
		return;
	if (n <= 0) {
		close_fd(&r->from[k]);
		return;
	}
	out_all(r, 1 + k, r->io, (u64)n);
	r->last[k] = now;
}

static void inherit_size(int master)
{
	struct winsize ws;
	if (sys(SYS_ioctl, 0, TIOCGWINSZ, &ws) == 0)
		sys(SYS_ioctl, master, TIOCSWINSZ, &ws);
}

static void restore_terminal(struct relay *r)
{
	sys(SYS_ioctl, 0, TCSETS, &r->saved);
}

/* on_signals passes the signals of a plain run on to the command. On a
 * terminal, as sandbox.Attach does, a resize is passed to the pty, and
 * SIGTERM, SIGHUP or SIGINT end incarnate: the connection's close hangs
 * the shell up, as closing a terminal window would. */
static void on_signals(struct relay *r)
{
	u8 si[128];
	while (sys(SYS_read, r->sigfd, si, sizeof si) == sizeof si) {
		u32 sig = (u32)si[0] | (u32)si[1] << 8;
		if (r->tty && sig == SIGWINCH) {
			inherit_size(r->to);
			continue;
		}
		if (r->tty) {
			close_fd(&r->sock);
			restore_terminal(r);
			sys(SYS_exit_group, 128 + sig, 0, 0);
		}
		char m[32];
		struct buf b = {m, 0, sizeof m, 0};
		puts_(&b, "{\"signal\":");
		putu(&b, sig);
		puts_(&b, "}");
		send_packet(r->sock, b.p, b.n, 0, 0);
	}
}

static void lost_keeper(struct relay *r)
{
	if (r && r->tty)
		restore_terminal(r);
	static const char m[] = "incarnate: lost the session's keeper: peer closed the connection\n";
	write_all(2, m, sizeof m - 1);
	sys(SYS_exit_group, 1, 0, 0);
}

/* tell_stopped says, as session.TellStopped does, that the command ended
 * because the session was stopped from outside. */
static void tell_stopped(struct relay *r)
{
	if (r->stoppedn == 0)
		return;
	char m[1024];
	struct buf b = {m, 0, sizeof m, 0};
	puts_(&b, "incarnate: session ");
	putstr(&b, r->name);
	puts_(&b, " ");
	putvisible(&b, (struct str){r->stopped, r->stoppedn});
	puts_(&b, "\n");
	write_all(2, b.p, b.n);
}

/* relay runs until the command has exited and its output is passed on
 * (as sandbox's relay: after the exit, a stream quiet for 100 ms, or
 * any stream after 2 s, is left), then exits with the command's status. */
static void relay(struct relay *r)
{
	long status = -1;
	i64 end = 0;
	for (;;) {
		i64 now = now_ms(), timeout = -1;
		if (status >= 0) {
			for (int k = 0; k < 2; k++) {
				if (r->from[k] >= 0 && (now >= r->last[k] + QUIET_MS || now >= end))
					close_fd(&r->from[k]);
				if (r->from[k] >= 0) {
					i64 d = r->last[k] + QUIET_MS < end ? r->last[k] + QUIET_MS : end;
					if (timeout < 0 || d - now < timeout)
						timeout = d - now;
				}
			}
			if (r->from[0] < 0 && r->from[1] < 0) {
				tell_stopped(r);
				sys(SYS_exit_group, status, 0, 0);
			}
		}
		struct pollfd p[6];
		int np = 0, ix[6];
		const int fds[6] = {status < 0 && r->pendn == 0 ? r->in : -1,
				    status < 0 && r->pendn > 0 ? r->to : -1,
				    r->from[0], r->from[1],
				    status < 0 ? r->sock : -1, status < 0 ? r->sigfd : -1};
		const short evs[6] = {POLLIN, POLLOUT, POLLIN, POLLIN, POLLIN, POLLIN};
		for (int k = 0; k < 6; k++) {
			if (fds[k] >= 0) {
				p[np] = (struct pollfd){fds[k], evs[k], 0};
				ix[np++] = k;
			}
		}
		long n = sys(SYS_poll, p, np, timeout);
		if (n < 0)
			continue;
		short rev[6] = {0};
		for (int k = 0; k < np; k++)
			rev[ix[k]] = p[k].revents;
		now = now_ms();
		if (rev[0] || rev[1])
			pass_stdin(r, rev[0], rev[1]);
		for (int k = 0; k < 2; k++)
			if (rev[2 + k])
				pass_output(r, k, now);
		if (rev[5])
			on_signals(r);
		if (rev[4] && (status = take_exit(r, status)) >= 0) {
			end = now + DRAIN_MS;
			r->last[0] = r->last[1] = now;
			r->in = -1;
			close_fd(&r->to);
		}
	}
}

/* take_exit notes the command's status and the stopped note, if the
 * reply is its exit; a lost keeper ends incarnate. */
static long take_exit(struct relay *r, long status)
{
	struct reply rep;
	int got = recv_reply(r->sock, r->msg, sizeof r->msg, &rep, 0);
	if (got <= 0)
		lost_keeper(r);
	if (!rep.has_exit)
		return status;
	memcpy(r->stopped, rep.stopped.p, rep.stopped.n);
	r->stoppedn = rep.stopped.n;
	return rep.exit & 0xff; /* as exit(2) takes it */
}

/* relay_tty connects our terminal to the pty until the shell exits, as
 * sandbox.Attach does: then what it printed last is passed on for up to
 * 200 ms, our terminal is restored, and incarnate exits with its status.
 * Nothing is read from our terminal once the shell is gone, so the
 * user's next keystroke stays the host's. */
static void relay_tty(struct relay *r)
{
	enum { LAST_OUTPUT_MS = 200 };
	long status = -1;
	i64 end = 0;
	for (;;) {
		i64 now = now_ms(), timeout = -1;
		if (status >= 0 && (r->to < 0 || now >= end)) {
			restore_terminal(r);
			tell_stopped(r);
			sys(SYS_exit_group, status, 0, 0);
		}
		if (status >= 0)
			timeout = end - now;
		struct pollfd p[4] = {
			{status < 0 && r->pendn == 0 ? r->in : -1, POLLIN, 0},
			{r->to, (short)(POLLIN | (status < 0 && r->pendn > 0 ? POLLOUT : 0)), 0},
			{status < 0 ? r->sock : -1, POLLIN, 0},
			{r->sigfd, POLLIN, 0},
		};
		if (sys(SYS_poll, p, 4, timeout) < 0)
			continue;
		if (p[0].revents || (p[1].revents & POLLOUT))
			pass_stdin(r, p[0].revents, p[1].revents);
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) {
			long n = sys(SYS_read, r->to, r->io, CHUNK);
			if (n > 0)
				out_all(r, 1, r->io, (u64)n);
			else if (n != -EINTR && n != -EAGAIN)
				close_fd(&r->to); /* EIO: nothing holds the terminal now */
		}
		if (p[3].revents)
			on_signals(r);
		if (p[2].revents && (status = take_exit(r, status)) >= 0) {
			end = now_ms() + LAST_OUTPUT_MS;
			r->in = -1;
			r->pendn = 0;
		}
	}
}

/* ---- the whole of it ---- */

struct stage {
	struct run run;
	struct ticket t;
	struct env env;
	struct relay rl;
	u8 ticket_buf[TICKET_MAX];
	char req[256 << 10];
	char rootbuf[4096], rtbuf[4096], sockbuf[4096], tickbuf[4096], cwdbuf[4096], enterbuf[4096];
	char confbuf[4096], shellkv[4096 + 8], ps1kv[512];
};

/* store_root mirrors the CLI's storeRoot for the environment alone. */
static struct str store_root(struct stage *s, char **envp)
{
	const char *v = getenv_val(envp, "INCARNATE_ROOT");
	if (v && *v)
		return cstr(v);
	struct str rel = cstr("/incarnate");
	if ((v = getenv_val(envp, "XDG_DATA_HOME")) && *v)
		return cpath(s->rootbuf, sizeof s->rootbuf, cstr(v), rel) ? cstr(s->rootbuf) : (struct str){0, 0};
	if ((v = getenv_val(envp, "HOME")) && *v)
		return cpath(s->rootbuf, sizeof s->rootbuf, cstr(v), cstr("/.local/share/incarnate")) ? cstr(s->rootbuf) : (struct str){0, 0};
	return (struct str){0, 0};
}

/* runtime_dir mirrors the session store's runtimeDir, where it finds a
 * private directory at once; the other cases are Go's. */
static struct str runtime_dir(struct stage *s, char **envp, u32 euid)
{
	const char *v = getenv_val(envp, "XDG_RUNTIME_DIR");
	if (v && *v) {
		if (!cpath(s->rtbuf, sizeof s->rtbuf, cstr(v), cstr("/incarnate")))
			return (struct str){0, 0};
	} else {
		char id[32];
		struct buf b = {id, 0, sizeof id, 0};
		puts_(&b, "/incarnate-");
		putu(&b, euid);
		const char *tmp = getenv_val(envp, "TMPDIR");
		if (!tmp || !*tmp)
			tmp = "/tmp";
		if (!cpath(s->rtbuf, sizeof s->rtbuf, cstr(tmp), (struct str){id, b.n}))
			return (struct str){0, 0};
	}
	return private_dir(s->rtbuf, euid) ? cstr(s->rtbuf) : (struct str){0, 0};
}

static int read_ticket(struct stage *s, const char *path, u32 euid)
{
	int fd = (int)sys4(SYS_openat, AT_FDCWD, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0);
	if (fd < 0)
		return 0;
	struct kstat st;
	long n = -1;
	if (sys(SYS_fstat, fd, &st, 0) == 0 && (st.mode & S_IFMT) == S_IFREG && st.uid == euid &&
	    (st.mode & 022) == 0 && st.size > 0 && st.size <= TICKET_MAX)
		n = sys(SYS_read, fd, s->ticket_buf, (u64)st.size);
	sys(SYS_close, fd, 0, 0);
	return n == st.size && parse_ticket(s->ticket_buf, (u32)n, &s->t);
}

static void close_fds(int *fds, int n)
{
	for (int k = 0; k < n; k++)
		close_fd(&fds[k]);
}

/* find_keeper finds session name's keeper socket (in s->sockbuf) and
 * reads its ticket into s->t. It returns why it cannot, or 0. */
static const char *find_keeper(struct stage *s, struct str name, char **envp)
{
	u32 euid = (u32)sys(SYS_geteuid, 0, 0, 0);
	struct str root = store_root(s, envp);
	if (!clean_abs(root))
		return "the store path is not plain";
	struct str rt = runtime_dir(s, envp, euid);
	if (rt.n == 0)
		return "no private runtime directory";
	char hash[20];
	struct buf hb = {hash, 0, sizeof hash, 0};
	put(&hb, "/", 1);
	u64 h = fnv64a(root, name);
	for (int k = 60; k >= 0; k -= 4)
		put(&hb, &hexdig[(h >> k) & 15], 1);
	const char *sock = cpath(s->sockbuf, sizeof s->sockbuf - 8, rt, (struct str){hash, hb.n});
	if (!sock)
		return "a path too long";
	const char *tick = cpath(s->tickbuf, sizeof s->tickbuf, cstr(sock), cstr(".ticket"));
	sock = cpath(s->sockbuf, sizeof s->sockbuf, cstr(sock), cstr(".sock"));
	if (!tick || !sock)
		return "a path too long";
	if (!read_ticket(s, tick, euid))
		return "no ticket: no keeper runs";
	if (s->t.euid != euid || !eq(s->t.root, root) || !eq(s->t.name, name))
		return "the ticket is another's";
	/* A ticket speaks for the keeper that made its socket, not for one
	 * started since (whose ticket may not have been written). */
	struct kstat sst;
	if (sys4(SYS_newfstatat, AT_FDCWD, sock, &sst, AT_SYMLINK_NOFOLLOW) != 0 ||
	    (sst.mode & S_IFMT) != S_IFSOCK || sst.dev != s->t.sock_dev || sst.ino != s->t.sock_ino)
		return "the ticket is older than the socket";
	return 0;
}

/* start_dir is the CLI's startDir with no --cwd: the caller's own
 * directory, else root's home. It returns why it cannot tell, or 0. */
static const char *start_dir(struct stage *s, char **envp, struct str *dir, struct str *dir_else)
{
	*dir = working_dir(envp, s->cwdbuf, sizeof s->cwdbuf);
	*dir_else = cstr("/root");
	if (dir->n == 0 && dir->p)
		return "a working directory too long";
	if (dir->n == 0)
		*dir = cstr("/root"), *dir_else = cstr("/");
	if (!printable_ascii(*dir))
		return "the working directory is not plain text";
	return 0;
}

/* make_request builds the spawn request in s->req, with the session's
 * environment and the extras of enter (shell_kv, ps1_kv, or of no
 * length). It returns why it cannot, or 0. */
static const char *make_request(struct stage *s, const struct spawn *sp, struct str dir, struct str dir_else,
				char **envp, struct str shell_kv, struct str ps1_kv, struct buf *req)
{
	s->env.n = 0;
	s->env.over = 0;
	build_env(&s->env, &s->t, envp, shell_kv, ps1_kv);
	*req = (struct buf){s->req, 0, sizeof s->req, 0};
	request(req, sp, &s->env, dir, dir_else);
	return req->over || s->env.over ? "a request too large" : 0;
}

/* dial connects to the keeper at s->sockbuf and marks the session
 * entered now, as Exec records it (a missing mark is Go's to make). It
 * returns the socket, or -1 with why. */
static int dial(struct stage *s, const char **why)
{
	int sk = (int)sys(SYS_socket, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {AF_UNIX, {0}};
	struct str sp_ = cstr(s->sockbuf);
	*why = "socket";
	if (sk < 0 || sp_.n >= sizeof sa.path)
		goto fail;
	memcpy(sa.path, sp_.p, sp_.n);
	*why = "the keeper does not answer";
	if (sys(SYS_connect, sk, &sa, sizeof sa) != 0)
		goto fail;
	*why = "the entered mark";
	if (!cpath(s->enterbuf, sizeof s->enterbuf, s->t.entered, (struct str){"", 0}) ||
	    sys4(SYS_utimensat, AT_FDCWD, s->enterbuf, 0, AT_SYMLINK_NOFOLLOW) != 0)
		goto fail;
	*why = 0;
	return sk;
fail:
	close_fd(&sk);
	return -1;
}

/* tell_started_in says, as Exec's notice does, that the process starts
 * elsewhere, as dir is not in the session. */
static void tell_started_in(struct str dir, struct str name, struct str started_in)
{
	if (started_in.n == 0)
		return;
	char m[12288];
	struct buf b = {m, 0, sizeof m, 0};
	puts_(&b, "incarnate: ");
	putvisible(&b, dir);
	puts_(&b, " is not in session ");
	putstr(&b, name);
	puts_(&b, ": starting in ");
	putvisible(&b, started_in);
	puts_(&b, "\n");
	write_all(2, b.p, b.n);
}

/* signals_to blocks mask and returns a signalfd for it. */
static int signals_to(u64 mask)
{
	sys4(SYS_rt_sigprocmask, SIG_BLOCK, &mask, 0, 8);
	struct ksigaction ign = {1 /* SIG_IGN */, 0, 0, 0};
	sys4(SYS_rt_sigaction, SIGPIPE, &ign, 0, 8);
	return (int)sys4(SYS_signalfd4, -1, &mask, 8, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* stage_run is a plain run from its start; its frame is the big one. */
__attribute__((noinline)) static int stage_run(struct run *r, struct str name, char **cmd, char **envp)
{
	struct stage big, *s = &big;
	struct str dir, dir_else;
	struct buf req;
	struct spawn sp = {cmd, {0, 0}, 0, 0, 0};
	const char *why = find_keeper(s, name, envp);
	if (!why)
		why = start_dir(s, envp, &dir, &dir_else);
	if (!why)
		why = make_request(s, &sp, dir, dir_else, envp, (struct str){0, 0}, (struct str){0, 0}, &req);
	if (why)
		return aside(r, why);

	/* The command's pipes: [0] its stdin, [1] ours to it, then its
	 * stdout and stderr with our ends. */
	int in[2], out[2], errp[2];
	if (sys(SYS_pipe2, in, O_CLOEXEC, 0) != 0)
		return aside(r, "pipe");
	if (sys(SYS_pipe2, out, O_CLOEXEC, 0) != 0) {
		close_fds(in, 2);
		return aside(r, "pipe");
	}
	if (sys(SYS_pipe2, errp, O_CLOEXEC, 0) != 0) {
		close_fds(in, 2);
		close_fds(out, 2);
		return aside(r, "pipe");
	}
	int all[7] = {in[0], in[1], out[0], out[1], errp[0], errp[1], -1};
	int sk = all[6] = dial(s, &why);
	int theirs[3] = {in[0], out[1], errp[1]};
	if (sk < 0 || !send_packet(sk, req.p, req.n, theirs, 3)) {
		close_fds(all, 7);
		return aside(r, sk < 0 ? why : "the keeper took no request");
	}
	close_fds(theirs, 3);
	all[0] = all[3] = all[5] = -1;
	struct reply rep;
	int got = recv_reply(sk, s->rl.msg, sizeof s->rl.msg, &rep, 0);
	if (got == 0 || (got == 1 && rep.error)) {
		/* Nothing runs (a refusal, or a keeper that went before it
		 * read the request): Go asks again and says what went wrong. */
		close_fds(all, 7);
		return aside(r, "the keeper refused");
	}
	if (got < 0)
		lost_keeper(0); /* the command may run: never start it twice */

	/* From here the command runs: the stage sees it through. */
	tell_started_in(dir, name, rep.started_in);
	struct relay *rl = &s->rl;
	rl->name = name;
	rl->tty = 0;
	rl->stoppedn = 0;
	rl->sock = sk;
	rl->sigfd = signals_to(forwarded);
	rl->in = 0;
	rl->to = in[1];
	rl->from[0] = out[0];
	rl->from[1] = errp[0];
	rl->pendn = rl->pendoff = 0;
	sys(SYS_fcntl, rl->to, F_SETFL, O_NONBLOCK);
	relay(rl);
	return 0;
}

/* config_path mirrors the CLI's: config.toml in ui.ConfigDir. */
static const char *config_path(struct stage *s, char **envp)
{
	const char *v = getenv_val(envp, "XDG_CONFIG_HOME");
	if (v && *v)
		return clean_abs(cstr(v)) ? cpath(s->confbuf, sizeof s->confbuf, cstr(v), cstr("/incarnate/config.toml")) : 0;
	v = getenv_val(envp, "HOME");
	if (v && *v && clean_abs(cstr(v)))
		return cpath(s->confbuf, sizeof s->confbuf, cstr(v), cstr("/.config/incarnate/config.toml"));
	return 0;
}

/* config_unchanged says whether config.toml is the one the ticket's
 * shell was read from (or still absent, as it was then). */
static int config_unchanged(struct stage *s, char **envp)
{
	const char *path = config_path(s, envp);
	if (!path || !eq(cstr(path), s->t.config))
		return 0;
	struct kstat st;
	long e = sys4(SYS_newfstatat, AT_FDCWD, path, &st, 0);
	if (e == -ENOENT)
		return s->t.stamp[0] == 0 && s->t.stamp[1] == 0 && s->t.stamp[2] == 0;
	return e == 0 && st.ino == s->t.stamp[0] && (u64)st.size == s->t.stamp[1] &&
	       (u64)st.times[2] * 1000000000ul + (u64)st.times[3] == s->t.stamp[2];
}

/* choose_shell is the CLI's shellOptions: --shell, else the session's
 * own, else config.toml's, else $SHELL, else /bin/sh; the last two but
 * one fall back to /bin/sh where the session lacks them. It returns why
 * it cannot tell, or 0. */
static const char *choose_shell(struct stage *s, const char *flag, char **envp, struct spawn *sp)
{
	sp->fallback = 0;
	if (flag && *flag) {
		sp->shell = cstr(flag);
		return 0;
	}
	if (s->t.shell.n) {
		sp->shell = s->t.shell;
		return 0;
	}
	if (!config_unchanged(s, envp))
		return "config.toml changed since the keeper started, or is not where it was";
	const char *env_shell = getenv_val(envp, "SHELL");
	sp->fallback = 1;
	if (s->t.config_shell.n)
		sp->shell = s->t.config_shell;
	else if (env_shell && *env_shell)
		sp->shell = cstr(env_shell);
	else
		sp->shell = cstr("/bin/sh"), sp->fallback = 0;
	return 0;
}

/* raw_mode is x/term's MakeRaw. */
static void raw_mode(struct termios *t)
{
	t->iflag &= ~(01u | 02u | 010u | 040u | 0100u | 0200u | 0400u | 02000u);
	t->oflag &= ~01u;
	t->lflag &= ~(010u | 0100u | 02u | 01u | 0100000u);
	t->cflag &= ~(060u | 0400u);
	t->cflag |= 060u;
	t->cc[6] = 1; /* VMIN */
	t->cc[5] = 0; /* VTIME */
}

/* stage_enter is `enter` on a terminal, from its start: the shell on a
 * pty of the session's, connected to ours as sandbox.Attach does. */
__attribute__((noinline)) static int stage_enter(struct run *r, struct str name, const char *flag_shell, char **envp)
{
	struct stage big, *s = &big;
	struct relay *rl = &s->rl;
	struct str dir, dir_else;
	struct buf req;
	struct spawn sp = {0, {0, 0}, 0, 0, 0};
	if (sys(SYS_ioctl, 0, TCGETS, &rl->saved) != 0)
		return aside(r, "stdin is not a terminal");
	struct winsize ws;
	if (sys(SYS_ioctl, 0, TIOCGWINSZ, &ws) == 0)
		sp.rows = ws.rows, sp.cols = ws.cols;
	const char *why = find_keeper(s, name, envp);
	if (!why)
		why = start_dir(s, envp, &dir, &dir_else);
	if (!why)
		why = choose_shell(s, flag_shell, envp, &sp);
	struct buf kv = {s->shellkv, 0, sizeof s->shellkv, 0};
	struct buf ps1 = {s->ps1kv, 0, sizeof s->ps1kv, 0};
	puts_(&kv, "SHELL="), putstr(&kv, sp.shell);
	puts_(&ps1, "PS1=["), putstr(&ps1, name), puts_(&ps1, "] \\w \\$ ");
	if (!why && (kv.over || ps1.over))
		why = "a shell or name too long";
	if (!why)
		why = make_request(s, &sp, dir, dir_else, envp, (struct str){kv.p, kv.n}, (struct str){ps1.p, ps1.n}, &req);
	int sk = why ? -1 : dial(s, &why);
	if (why)
		return aside(r, why);
	if (!send_packet(sk, req.p, req.n, 0, 0)) {
		close_fd(&sk);
		return aside(r, "the keeper took no request");
	}
	struct reply rep;
	int master = -1;
	int got = recv_reply(sk, rl->msg, sizeof rl->msg, &rep, &master);
	if (got == 0 || (got == 1 && rep.error)) {
		close_fd(&master);
		close_fd(&sk);
		return aside(r, "the keeper refused");
	}
	if (got < 0)
		lost_keeper(0); /* the shell may run: never start it twice */
	if (master < 0) {
		static const char m[] = "incarnate: keeper sent no terminal\n";
		write_all(2, m, sizeof m - 1);
		sys(SYS_exit_group, 1, 0, 0);
	}

	/* From here the shell runs: the stage sees it through. */
	tell_started_in(dir, name, rep.started_in);
	/* The signals that end incarnate are caught before the terminal is
	 * raw, so none leaves it so. */
	rl->sigfd = signals_to(1ul << (SIGWINCH - 1) | 1ul << (SIGTERM - 1) | 1ul << (SIGHUP - 1) | 1ul << (SIGINT - 1));
	struct termios raw = rl->saved;
	raw_mode(&raw);
	sys(SYS_ioctl, 0, TCSETS, &raw);
	inherit_size(master);
	rl->name = name;
	rl->tty = 1;
	rl->stoppedn = 0;
	rl->sock = sk;
	rl->in = 0;
	rl->to = master;
	rl->pendn = rl->pendoff = 0;
	sys(SYS_fcntl, master, F_SETFL, O_NONBLOCK);
	relay_tty(rl);
	return 0;
}

/* go_duration says whether Go's time.ParseDuration takes s, and it is
 * not negative (as the CLI's setLinger wants): "0", or numbers, each
 * with a unit of ns, us, µs, ms, s, m or h. */
static int go_duration(const char *s)
{
	if (s[0] == '0' && s[1] == 0)
		return 1;
	if (*s == '+')
		s++;
	if (!*s)
		return 0;
	while (*s) {
		int digits = 0;
		while (*s >= '0' && *s <= '9')
			s++, digits++;
		if (*s == '.')
			for (s++; *s >= '0' && *s <= '9'; s++)
				digits++;
		if (!digits)
			return 0;
		if (s[0] == 'n' && s[1] == 's')
			s += 2;
		else if ((s[0] == 'u' || s[0] == 'm') && s[1] == 's')
			s += 2;
		else if ((((u8)s[0] == 0xc2 && (u8)s[1] == 0xb5) || ((u8)s[0] == 0xce && (u8)s[1] == 0xbc)) && s[2] == 's')
			s += 3;
		else if (s[0] == 's' || s[0] == 'm' || s[0] == 'h')
			s += 1;
		else
			return 0;
	}
	return 1;
}

/* enter_args reads `enter [--shell SH] NAME` as Go's flag package
 * would, flags anywhere; anything else is Go's. It returns the name, or
 * 0, with the last --shell given in *shell. */
static const char *enter_args(char **args, const char **shell)
{
	const char *name = 0;
	int flags = 1;
	*shell = 0;
	for (char **a = args; *a; a++) {
		struct str v = cstr(*a);
		if (flags && eq(v, cstr("--"))) {
			flags = 0;
		} else if (flags && (eq(v, cstr("--shell")) || eq(v, cstr("-shell")))) {
			if (!a[1])
				return 0;
			*shell = *++a;
		} else if (flags && (has_prefix(v, cstr("--shell=")) || has_prefix(v, cstr("-shell=")))) {
			*shell = *a + (v.p[1] == '-' ? 8 : 7);
		} else if (flags && v.n > 1 && v.p[0] == '-') {
			return 0;
		} else if (name || v.n == 0) {
			return 0; /* one name, and not an empty one */
		} else {
			name = *a;
		}
	}
	return name && name[0] != '-' ? name : 0;
}

/* stage_main takes its cheap look at the command line on a small frame:
 * every command of incarnate but a plain run and enter returns from
 * here. */
#include "spawner.c"

int stage_main(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1), **envp = argv + argc + 1;
	if (eq(cstr(argv[0]), cstr("incarnate:spawner")) && argc <= 2) {
		if (argc == 1)
			return spawner_main(SP_KEEPERS_USERNS);
		if (eq(cstr(argv[1]), cstr("own-userns")))
			return spawner_main(SP_OWN_USERNS);
		if (eq(cstr(argv[1]), cstr("own-userns-root")))
			return spawner_main(SP_OWN_USERNS_ROOT);
	}
	const char *mode = getenv_val(envp, "INCARNATE_STAGE");
	struct run r = {mode && eq(cstr(mode), cstr("must"))};
	if (mode && eq(cstr(mode), cstr("off")))
		return 0;

	/* incarnate run NAME [--] CMD...: any flag is Go's to read. */
	int enter = argc >= 3 && eq(cstr(argv[1]), cstr("enter"));
	const char *name = 0, *shell = 0;
	char **cmd = 0;
	if (enter && !(name = enter_args(argv + 2, &shell)))
		return aside(&r, "not a plain `enter [--shell SH] NAME`");
	if (!enter && (argc < 4 || !eq(cstr(argv[1]), cstr("run")) || argv[2][0] == '-' || argv[2][0] == 0))
		return aside(&r, "not a plain `run NAME CMD`");
	if (!enter) {
		name = argv[2];
		cmd = argv + 3;
		if (eq(cstr(cmd[0]), cstr("--")))
			cmd++;
		else if (cmd[0][0] == '-')
			return aside(&r, "a flag");
		if (!cmd[0] || !cmd[0][0])
			return aside(&r, "no command");
	}
	/* Go gives a closed fd 0-2 /dev/null; the stage's own fds would take
	 * their numbers instead, and be read as stdin or written as stdout. */
	for (int fd = 0; fd < 3; fd++)
		if (sys(SYS_fcntl, fd, F_GETFD, 0) < 0)
			return aside(&r, "a closed standard stream");
	long nenv = 0;
	for (char **v = envp; *v; v++)
		if (++nenv > ENV_MAX)
			return aside(&r, "too many environment variables");
	const char *linger = getenv_val(envp, "INCARNATE_LINGER");
	if (linger && *linger && !go_duration(linger))
		return aside(&r, "INCARNATE_LINGER is not a duration: Go says so");
	/* stage_run's buffers take about a megabyte of stack. */
	struct { u64 cur, max; } lim;
	if (sys(SYS_getrlimit, RLIMIT_STACK, &lim, 0) != 0 || lim.cur < STACK_NEEDED)
		return aside(&r, "a small stack limit");
	if (enter)
		return stage_enter(&r, cstr(name), shell, envp);
	return stage_run(&r, cstr(name), cmd, envp);
}
