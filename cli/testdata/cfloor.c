// cfloor does the kernel work of a cold `incarnate run S -- /bin/true` on
// a root session, in C and in one program: no Go start, no store, no
// keeper protocol. BenchmarkHardenedFloor times it against bubblewrap, so
// that the cold bar can be weighed against what the confinement alone
// costs on this machine. Its steps follow the keeper's op list for a
// session on an imported base (session/spec_linux.go) and the spawner's
// confinement (internal/prestage/c/spawner.c):
//
//   client   clone into new mount, pid, uts and ipc namespaces; exits as
//            soon as the job's status arrives, as incarnate's client does
//   keeper   rslave; its own /proc; the session's pids and memory cgroups
//            (v1 and v2); the spawner; the spawner's id map; idmapped
//            layer and upper dir; the overlay; proc with its read-only
//            binds; /dev (tmpfs, read-only device binds, devpts, shm,
//            links); sysfs; resolv.conf and hosts; pivot_root; hostname
//   spawner  joins the cgroups, makes its user namespace, becomes root
//            there, its own cgroup namespace, capability bounds,
//            no_new_privs, Landlock scopes, a seccomp filter, a fresh
//            keyring, then forks the job: setsid, parent-death signal, exec
//
// Usage: cfloor LAYER DIR [no-idmap] [no-cgroup] [no-confine]
// DIR holds upper/, work/ and root/; a "no-" word leaves out that part,
// for its share of the cost. Any failure exits 100+ with the step named.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/mount.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/file.h>
#include <sys/fsuid.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define RANGE 524288

static int idmap = 1, cgroups = 1, confine = 1;

static void die(const char *what)
{
	fprintf(stderr, "cfloor: %s: %s\n", what, strerror(errno));
	_exit(100);
}

static void check(long r, const char *what)
{
	if (r < 0)
		die(what);
}

static void put(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	check(fd, path);
	check(write(fd, s, strlen(s)), path);
	close(fd);
}

// bind is bindAt: a detached clone of src with attr set, moved onto dst.
static void bind(const char *src, const char *dst, uint64_t attr)
{
	int fd = syscall(SYS_open_tree, AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
	check(fd, src);
	struct mount_attr a = {.attr_set = attr};
	check(syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a), "mount_setattr");
	check(syscall(SYS_move_mount, fd, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH), dst);
	close(fd);
}

static int idmapped(const char *dir, int nsfd)
{
	int fd = syscall(SYS_open_tree, AT_FDCWD, dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	check(fd, dir);
	if (nsfd >= 0) {
		struct mount_attr a = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = nsfd};
		check(syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &a, sizeof a), "idmap");
	}
	return fd;
}

static void overlay(const char *layer, const char *dir, const char *target, int nsfd)
{
	int lower = idmapped(layer, nsfd), home = idmapped(dir, nsfd);
	int upper = openat(home, "upper", O_PATH | O_DIRECTORY | O_CLOEXEC);
	int work = openat(home, "work", O_PATH | O_DIRECTORY | O_CLOEXEC);
	check(upper | work, "upper");
	int fs = syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
	check(fs, "fsopen");
	check(syscall(SYS_fsconfig, fs, FSCONFIG_SET_FD, "lowerdir+", NULL, lower), "lowerdir+");
	check(syscall(SYS_fsconfig, fs, FSCONFIG_SET_FD, "upperdir", NULL, upper), "upperdir");
	check(syscall(SYS_fsconfig, fs, FSCONFIG_SET_FD, "workdir", NULL, work), "workdir");
	check(syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0), "create");
	int m = syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
	check(m, "fsmount");
	check(syscall(SYS_move_mount, m, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH), target);
	close(m), close(fs), close(upper), close(work), close(lower), close(home);
}

static void proc(const char *at)
{
	static const char *ro[] = {"sys", "sysrq-trigger", "irq", "bus", "fs"};
	char p[4096];
	check(mount("proc", at, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL), "proc");
	for (unsigned i = 0; i < sizeof ro / sizeof *ro; i++) {
		snprintf(p, sizeof p, "%s/%s", at, ro[i]);
		if (access(p, F_OK) == 0)
			bind(p, p, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
	}
}

static void dev(const char *root)
{
	static const char *nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
	static const char *links[][2] = {{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"}};
	char d[4096], p[4096], h[64];
	snprintf(d, sizeof d, "%s/dev", root);
	check(mount("tmpfs", d, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755"), "dev");
	for (unsigned i = 0; i < sizeof nodes / sizeof *nodes; i++) {
		snprintf(p, sizeof p, "%s/%s", d, nodes[i]);
		snprintf(h, sizeof h, "/dev/%s", nodes[i]);
		close(open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
		bind(h, p, MOUNT_ATTR_NOSUID | MOUNT_ATTR_RDONLY);
	}
	snprintf(p, sizeof p, "%s/pts", d);
	check(mkdir(p, 0755), "pts");
	check(mount("devpts", p, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"), "devpts");
	snprintf(p, sizeof p, "%s/shm", d);
	check(mkdir(p, 0755), "shm");
	check(mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV, "mode=01777"), "shm");
	for (unsigned i = 0; i < sizeof links / sizeof *links; i++) {
		snprintf(p, sizeof p, "%s/%s", d, links[i][1]);
		check(symlink(links[i][0], p), "symlink");
	}
}

// The cgroup paths of one run: v1's pids and memory hierarchies, or a
// cgroup2 directory, each named for the client's pid; and each one's
// parent, open, for its removal after the pivot.
static char cg[2][256], cgname[64];
static int ncg, cgparent[2];
static pid_t client;

static void make_cgroups(void)
{
	if (!cgroups)
		return;
	static const char *v1[] = {"/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory"};
	int v2 = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0;
	snprintf(cgname, sizeof cgname, "cfloor-%d", client);
	for (ncg = 0; ncg < (v2 ? 1 : 2); ncg++) {
		const char *parent = v2 ? "/sys/fs/cgroup" : v1[ncg];
		snprintf(cg[ncg], sizeof *cg, "%s/%s", parent, cgname);
		cgparent[ncg] = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		check(cgparent[ncg], parent);
		check(mkdir(cg[ncg], 0755), cg[ncg]);
	}
	char p[320];
	snprintf(p, sizeof p, "%s/pids.max", cg[0]);
	put(p, "8192");
}

static void join_cgroups(void)
{
	char p[320];
	for (int i = 0; i < ncg; i++) {
		// v1: "0" in tasks, the cheap write (cgroup.procs takes a global
		// rwsem); cgroup2 the same through cgroup.threads' neighbour.
		snprintf(p, sizeof p, "%s/%s", cg[i], ncg == 1 ? "cgroup.procs" : "tasks");
		put(p, "0");
	}
}

// A deny list of the size of the session's (sandbox/seccomp_policy.go):
// each entry a compare and a jump, as a linear filter is.
static void seccomp(void)
{
	static const int deny[] = {SYS_kexec_load, SYS_kexec_file_load, SYS_init_module, SYS_finit_module,
		SYS_delete_module, SYS_bpf, SYS_perf_event_open, SYS_userfaultfd, SYS_io_uring_setup,
		SYS_io_uring_enter, SYS_io_uring_register, SYS_open_by_handle_at, SYS_name_to_handle_at,
		SYS_unshare, SYS_setns, SYS_mount, SYS_umount2, SYS_pivot_root, SYS_swapon, SYS_swapoff,
		SYS_reboot, SYS_add_key, SYS_request_key, SYS_keyctl, SYS_acct, SYS_quotactl, SYS_lookup_dcookie,
		SYS_fsopen, SYS_fsconfig, SYS_fsmount, SYS_fspick, SYS_move_mount, SYS_open_tree,
		SYS_mount_setattr, SYS_settimeofday, SYS_clock_settime, SYS_clock_adjtime, SYS_adjtimex,
		SYS_vhangup, SYS_iopl, SYS_ioperm, SYS_create_module, SYS_get_kernel_syms, SYS_query_module,
		SYS_uselib, SYS_ustat, SYS_sysfs, SYS__sysctl, SYS_nfsservctl, SYS_personality, SYS_kcmp,
		SYS_process_vm_readv, SYS_process_vm_writev, SYS_ptrace, SYS_clone3};
	enum { n = sizeof deny / sizeof *deny };
	struct sock_filter f[2 * n + 4];
	int k = 0;
	f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0);
	for (int i = 0; i < n; i++) {
		f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, deny[i], 0, 1);
		f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
	}
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog prog = {.len = k, .filter = f};
	check(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog), "seccomp");
}

static void confine_self(void)
{
	// docker's default capability set, as sandbox/caps_linux.go keeps it.
	const uint64_t keep = 1ull << 0 | 1ull << 1 | 1ull << 3 | 1ull << 4 | 1ull << 5 | 1ull << 6 |
			      1ull << 7 | 1ull << 8 | 1ull << 10 | 1ull << 13 | 1ull << 18 | 1ull << 27 |
			      1ull << 29 | 1ull << 31;
	for (int c = 0; c <= 40; c++)
		if (!(keep & 1ull << c))
			check(prctl(PR_CAPBSET_DROP, c, 0, 0, 0), "capbset");
	check(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs");
	// Landlock ABI 6's ruleset attr (handled_access_fs, _net, scoped),
	// spelled out: the C library's headers may be older than the kernel.
	uint64_t ll[3] = {0, 0, 1 /* abstract unix sockets */ | 2 /* signals */};
	int fd = syscall(SYS_landlock_create_ruleset, ll, sizeof ll, 0);
	if (fd >= 0) {
		check(syscall(SYS_landlock_restrict_self, fd, 0), "landlock");
		close(fd);
	}
	seccomp();
}

struct pipes {
	int up[2];   // spawner to keeper: "in its user namespace", then the status
	int down[2]; // keeper to spawner: "mapped", then "root ready"
};

static void wait_byte(int fd)
{
	char c;
	if (read(fd, &c, 1) != 1)
		die("sync");
}

static int spawner(struct pipes *p)
{
	join_cgroups();
	check(unshare(CLONE_NEWUSER), "unshare user");
	check(write(p->up[1], "u", 1), "sync");
	wait_byte(p->down[0]);
	check(setresgid(0, 0, 0), "setresgid");
	check(setgroups(0, NULL), "setgroups");
	check(setresuid(0, 0, 0), "setresuid");
	if (cgroups)
		check(unshare(CLONE_NEWCGROUP), "unshare cgroup");
	wait_byte(p->down[0]);
	check(chdir("/"), "chdir");
	check(syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, 0), "keyring");
	if (confine)
		confine_self();
	pid_t job = fork();
	check(job, "fork job");
	if (job == 0) {
		setsid();
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl("/bin/true", "true", (char *)NULL);
		die("exec");
	}
	int ws;
	check(waitpid(job, &ws, 0), "wait job");
	int status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
	check(write(p->up[1], &status, sizeof status), "status");
	return 0;
}

static void map_ids(pid_t pid)
{
	char path[64], map[64];
	snprintf(map, sizeof map, "0 %d 65536\n", RANGE);
	snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
	put(path, map);
	snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
	put(path, map);
}

// act_as is actAs (sandbox/idmap_linux.go): the fs ids of the range's
// root, with the capabilities that setfsuid clears raised again.
static void act_as(int id)
{
	struct { uint32_t version; int pid; } h = {0x20080522, 0};
	struct { uint32_t eff, perm, inh; } d[2];
	setfsuid(id), setfsgid(id);
	check(syscall(SYS_capget, &h, d), "capget");
	d[0].eff = d[0].perm, d[1].eff = d[1].perm;
	check(syscall(SYS_capset, &h, d), "capset");
}

static int keeper(const char *layer, const char *dir, int status_fd)
{
	char root[4096], p[4096], ns[64];
	snprintf(root, sizeof root, "%s/root", dir);
	check(mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL), "rslave");
	check(mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL), "own proc");
	make_cgroups();
	struct pipes sp;
	check(pipe2(sp.up, O_CLOEXEC) | pipe2(sp.down, O_CLOEXEC), "pipe");
	pid_t s = fork();
	check(s, "fork spawner");
	if (s == 0)
		_exit(spawner(&sp));
	close(sp.up[1]), close(sp.down[0]);
	wait_byte(sp.up[0]);
	map_ids(s);
	check(write(sp.down[1], "m", 1), "sync");
	int nsfd = -1;
	if (idmap) {
		snprintf(ns, sizeof ns, "/proc/%d/ns/user", s);
		nsfd = open(ns, O_RDONLY | O_CLOEXEC);
		check(nsfd, ns);
		act_as(RANGE);
	}
	overlay(layer, dir, root, nsfd);
	setfsuid(0), setfsgid(0);
	snprintf(p, sizeof p, "%s/proc", root);
	proc(p);
	dev(root);
	snprintf(p, sizeof p, "%s/sys", root);
	check(mount("sysfs", p, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL), "sysfs");
	for (const char *const *f = (const char *const[]){"/etc/resolv.conf", "/etc/hosts", NULL}; *f; f++) {
		snprintf(p, sizeof p, "%s%s", root, *f);
		if (access(*f, F_OK) == 0 && access(p, F_OK) == 0)
			bind(*f, p, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY);
	}
	check(mount(root, root, NULL, MS_BIND | MS_REC, NULL), "bind root");
	int old = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	check(chdir(root), "chdir root");
	check(syscall(SYS_pivot_root, ".", "."), "pivot_root");
	check(fchdir(old), "fchdir");
	check(umount2(".", MNT_DETACH), "detach");
	check(chdir("/"), "chdir");
	check(sethostname("cfloor", 6), "hostname");
	check(write(sp.down[1], "r", 1), "sync");
	int status;
	if (read(sp.up[0], &status, sizeof status) != sizeof status)
		die("status");
	check(write(status_fd, &status, sizeof status), "status");
	close(status_fd);
	// The clean-up after the status, as a keeper's after its last job.
	waitpid(s, NULL, 0);
	for (int i = 0; i < ncg; i++)
		unlinkat(cgparent[i], cgname, AT_REMOVEDIR);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: cfloor LAYER DIR [no-idmap] [no-cgroup] [no-confine]\n");
		return 2;
	}
	for (int i = 3; i < argc; i++) {
		idmap &= strcmp(argv[i], "no-idmap") != 0;
		cgroups &= strcmp(argv[i], "no-cgroup") != 0;
		confine &= strcmp(argv[i], "no-confine") != 0;
	}
	// The lock the bench waits on, untimed, before the next round: held
	// by the keeper until it has cleaned up.
	char lock[4096];
	snprintf(lock, sizeof lock, "%s/lock", argv[2]);
	int lk = open(lock, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	check(lk, lock);
	check(flock(lk, LOCK_EX), "flock");
	client = getpid();
	int st[2];
	check(pipe2(st, O_CLOEXEC), "pipe");
	pid_t k = syscall(SYS_clone, CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD, 0, 0, 0, 0);
	check(k, "clone keeper");
	if (k == 0) {
		close(st[0]);
		_exit(keeper(argv[1], argv[2], st[1]));
	}
	close(st[1]);
	close(lk); // the keeper's copy holds it
	int status;
	if (read(st[0], &status, sizeof status) != sizeof status) {
		int ws;
		waitpid(k, &ws, 0);
		fprintf(stderr, "cfloor: the keeper failed\n");
		return WIFEXITED(ws) ? WEXITSTATUS(ws) : 100;
	}
	return status;
}
