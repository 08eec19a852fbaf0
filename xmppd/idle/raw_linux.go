package idle

import (
	"syscall"
	"unsafe"
)

// The system calls on the message path go through RawSyscall, not
// Syscall. Both make the same call; Syscall also tells the Go scheduler
// that the goroutine may block, and that wakes sysmon from its deep sleep
// (runtime.entersyscall) — after which sysmon polls every 20 µs for a
// while. With a message every few milliseconds that was two of xmppd's
// three remaining context switches per message (perf, sched:sched_switch,
// at 500 msg/s). None of these calls can block: the sockets and the epoll
// descriptor are non-blocking, and epoll_pwait is asked for a zero timeout.

func sysRead(fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(ptr), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func sysWrite(fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(ptr), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func epollCtl(epfd, op, fd int, ev *syscall.EpollEvent) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// epollPoll is epoll_pwait with a zero timeout (arm64 has no epoll_wait).
// msec must be 0: a raw call that waits would hold the thread and its P.
func epollPoll(epfd int, events []syscall.EpollEvent, msec int) (int, error) {
	if msec != 0 {
		panic("idle: epollPoll must not wait")
	}
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
