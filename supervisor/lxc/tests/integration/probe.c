/* Confinement probe for the root_lxc_* tests: tries what a confined container must not
 * do (and a few things it must), each in a fresh child process, and prints one line per
 * check: "<name> <errno>", 0 when the call succeeded. Built static (`cc -static`) by the
 * fixture, so it runs in the busybox image. Not part of any product. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/if.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

static long r(long rc) { return rc < 0 ? errno : 0; }

static long keyctl_(void) { return r(syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0)); }
static long add_key_(void) { return r(syscall(SYS_add_key, "user", "hearth", "x", 1, -1 /* thread: gone at exit */)); }
static long bpf_(void) {
	char attr[128] = {0}; /* BPF_MAP_CREATE with map_type 0: EINVAL if the call runs */
	return r(syscall(SYS_bpf, 0, attr, sizeof attr));
}
static long userfaultfd_(void) { return r(syscall(SYS_userfaultfd, 0)); }
static long perf_event_open_(void) {
	char attr[128] = {0};
	return r(syscall(SYS_perf_event_open, attr, 0, -1, -1, 0));
}
static long io_uring_setup_(void) {
	char params[120] = {0};
	return r(syscall(SYS_io_uring_setup, 1, params));
}
static long clone3_(void) {
	char args[88] = {0}; /* size 88 = CLONE_ARGS_SIZE_VER2; flags 0, exit_signal 0 */
	long pid = syscall(SYS_clone3, args, sizeof args);
	if (pid == 0)
		_exit(0);
	if (pid > 0) {
		waitpid(pid, NULL, __WALL);
		return 0;
	}
	return errno;
}
static long unshare_user(void) { return r(unshare(CLONE_NEWUSER)); }
static long clone_user(void) {
	long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
	if (pid == 0)
		_exit(0);
	if (pid > 0) {
		waitpid(pid, NULL, 0);
		return 0;
	}
	return errno;
}
static long unshare_net(void) { return r(unshare(CLONE_NEWNET)); } /* allowed: control */
static long mknod_(void) {
	unlink("/tmp/probe-null");
	long e = r(mknod("/tmp/probe-null", S_IFCHR | 0600, makedev(1, 3)));
	unlink("/tmp/probe-null");
	return e;
}
static long raw_socket(void) {
	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	return fd < 0 ? errno : (close(fd), 0);
}
static long packet_socket(void) {
	int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	return fd < 0 ? errno : (close(fd), 0);
}
static long tcp_socket(void) { /* allowed: control */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	return fd < 0 ? errno : (close(fd), 0);
}
static long set_mtu(void) { /* needs net_admin */
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		return errno;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
	if (ioctl(fd, SIOCGIFMTU, &ifr) < 0)
		return errno;
	long e = r(ioctl(fd, SIOCSIFMTU, &ifr)); /* same MTU: a no-op where permitted */
	close(fd);
	return e;
}

struct check {
	const char *name;
	long (*run)(void);
};
static const struct check checks[] = {
	{"keyctl", keyctl_},         {"add_key", add_key_},
	{"bpf", bpf_},               {"userfaultfd", userfaultfd_},
	{"perf_event_open", perf_event_open_},
	{"io_uring_setup", io_uring_setup_},
	{"clone3", clone3_},         {"unshare_user", unshare_user},
	{"clone_user", clone_user},  {"unshare_net", unshare_net},
	{"mknod", mknod_},           {"raw_socket", raw_socket},
	{"packet_socket", packet_socket},
	{"tcp_socket", tcp_socket},  {"set_mtu", set_mtu},
};

int main(void) {
	for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
		int pipefd[2];
		if (pipe(pipefd) < 0)
			return 2;
		pid_t pid = fork();
		if (pid == 0) {
			close(pipefd[0]);
			long e = checks[i].run();
			if (write(pipefd[1], &e, sizeof e) != sizeof e)
				_exit(3);
			_exit(0);
		}
		close(pipefd[1]);
		long e = -1;
		if (read(pipefd[0], &e, sizeof e) != sizeof e)
			e = -1;
		close(pipefd[0]);
		waitpid(pid, NULL, 0);
		printf("%s %ld\n", checks[i].name, e);
	}
	return 0;
}
