/* Startup for rv32 on QEMU's `virt` machine (-bios none, machine mode): set the
   stack and global pointers, copy .data, zero .bss, run main, exit through
   semihosting. The instruction counter is minstret, which QEMU derives from
   icount (exact with -icount shift=0). */
#include <stdint.h>

#include "semihost.h"

extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[];
int main(void);
void qcc_cstart(void) __attribute__((noreturn));

__asm__(".section .text.start, \"ax\"\n"
        ".global _start\n"
        "_start:\n"
        ".option push\n"
        ".option norelax\n"
        "    la gp, __global_pointer$\n"
        ".option pop\n"
        "    la sp, __stack_top\n"
        "    la t0, qcc_trap\n"
        ".option push\n"
        ".option arch, +zicsr\n"
        "    csrw mtvec, t0\n"
        ".option pop\n"
        "    j qcc_cstart\n"
        ".balign 4\n"
        "qcc_trap:\n"
        "    j qcc_trap_c\n"
        ".text\n");

void qcc_trap_c(void) __attribute__((noreturn));
void qcc_trap_c(void)
{
    qcc_sh_puts("qcc: trap on the target\n");
    qcc_sh_exit(70);
}

void qcc_cstart(void)
{
    uint32_t *src = __data_load, *dst = __data_start;
    while (dst < __data_end) *dst++ = *src++;
    for (dst = __bss_start; dst < __bss_end;) *dst++ = 0;
    qcc_sh_exit(main());
}

void qcc_counter_start(void) {}

static uint64_t qcc_instret(void)
{
    uint32_t hi, lo, hi2;
    /* .option arch: binutils >= 2.38 wants Zicsr named, while the multilib
       selection wants plain -march=rv32imac. */
    do {
        __asm__ volatile(".option push\n.option arch, +zicsr\n"
                         "csrr %0, minstreth\ncsrr %1, minstret\ncsrr %2, minstreth\n"
                         ".option pop"
                         : "=r"(hi), "=r"(lo), "=r"(hi2));
    } while (hi != hi2);
    return ((uint64_t)hi << 32) | lo;
}

uint64_t qcc_counter_begin(void) { return qcc_instret(); }

uint64_t qcc_counter_end(void) { return qcc_instret(); }
