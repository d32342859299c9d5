/* Semihosting for the bare-metal harness: the trap sequence per architecture,
   then plain C wrappers. See semihost.h. */
#include "semihost.h"

#include <string.h>

#if defined(__riscv)
/* The RISC-V semihosting trap: an ebreak between two marker instructions, all
   three uncompressed and in one page (the function is 16-byte aligned). */
__attribute__((noinline, aligned(16))) uintptr_t qcc_semihost(uintptr_t op, uintptr_t arg)
{
    register uintptr_t a0 __asm__("a0") = op;
    register uintptr_t a1 __asm__("a1") = arg;
    __asm__ volatile(".option push\n"
                     ".option norvc\n"
                     "slli x0, x0, 0x1f\n"
                     "ebreak\n"
                     "srai x0, x0, 7\n"
                     ".option pop\n"
                     : "+r"(a0)
                     : "r"(a1)
                     : "memory");
    return a0;
}
#elif defined(__arm__) && defined(__thumb__)
__attribute__((noinline)) uintptr_t qcc_semihost(uintptr_t op, uintptr_t arg)
{
    register uintptr_t r0 __asm__("r0") = op;
    register uintptr_t r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}
#else
#error "qcc semihosting: unsupported architecture"
#endif

long qcc_sh_open(const char *path, int mode)
{
    uintptr_t args[3] = {(uintptr_t)path, (uintptr_t)mode, (uintptr_t)strlen(path)};
    return (long)(intptr_t)qcc_semihost(QCC_SYS_OPEN, (uintptr_t)args);
}

int qcc_sh_close(long fd)
{
    uintptr_t args[1] = {(uintptr_t)fd};
    return (int)(intptr_t)qcc_semihost(QCC_SYS_CLOSE, (uintptr_t)args);
}

size_t qcc_sh_read(long fd, void *buf, size_t n)
{
    uintptr_t args[3] = {(uintptr_t)fd, (uintptr_t)buf, (uintptr_t)n};
    return (size_t)qcc_semihost(QCC_SYS_READ, (uintptr_t)args);
}

size_t qcc_sh_write(long fd, const void *buf, size_t n)
{
    uintptr_t args[3] = {(uintptr_t)fd, (uintptr_t)buf, (uintptr_t)n};
    return (size_t)qcc_semihost(QCC_SYS_WRITE, (uintptr_t)args);
}

void qcc_sh_puts(const char *s) { qcc_semihost(QCC_SYS_WRITE0, (uintptr_t)s); }

void qcc_sh_exit(int status)
{
    /* SYS_EXIT_EXTENDED carries a status on 32-bit targets too (plain SYS_EXIT cannot). */
    uintptr_t args[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uintptr_t)status};
    qcc_semihost(QCC_SYS_EXIT_EXTENDED, (uintptr_t)args);
    for (;;) {
    }
}
