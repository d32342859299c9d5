/* Semihosting calls for the bare-metal harness (qcc.backends.c.targets).
   QEMU services them on the host when started with
   -semihosting-config enable=on,target=native. Only what the harness needs:
   open/read/write/close a host file and exit with a status. */
#ifndef QCC_SEMIHOST_H
#define QCC_SEMIHOST_H

#include <stddef.h>
#include <stdint.h>

#define QCC_SYS_OPEN 0x01
#define QCC_SYS_CLOSE 0x02
#define QCC_SYS_WRITE0 0x04
#define QCC_SYS_WRITE 0x05
#define QCC_SYS_READ 0x06
#define QCC_SYS_EXIT_EXTENDED 0x20

uintptr_t qcc_semihost(uintptr_t op, uintptr_t arg);

/* mode: 0 "r", 1 "rb", 4 "w", 5 "wb" (the ISO C fopen modes in semihosting order). */
long qcc_sh_open(const char *path, int mode);
int qcc_sh_close(long fd);
/* Returns the number of bytes NOT transferred (0 on success), as semihosting does. */
size_t qcc_sh_read(long fd, void *buf, size_t n);
size_t qcc_sh_write(long fd, const void *buf, size_t n);
void qcc_sh_puts(const char *s);
void qcc_sh_exit(int status) __attribute__((noreturn));

#endif
