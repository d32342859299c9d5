/* Startup for Cortex-M4/M7 on QEMU's MPS2 boards (mps2-an386, mps2-an500):
   vector table, reset handler (copy .data, zero .bss, enable the FPU), and the
   instruction counter: SysTick on the processor clock with a wrap counter.
   Under -icount shift=0 every instruction advances virtual time by 1 ns, so one
   SysTick tick is 40 instructions; each reading synchronises to a tick edge to
   resolve the count to within 4 instructions (docs/targets.md). */
#include <stdint.h>

#include "semihost.h"

extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[], __stack_top[];
int main(void);

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
/* Instructions per SysTick tick: QEMU's MPS2 boards clock the core at 25 MHz and
   -icount shift=0 makes one instruction 1 ns (measured on mps2-an386 and -an500). */
#define QCC_TICK_INSNS 40u

static volatile uint32_t qcc_systick_wraps;

void qcc_reset(void) __attribute__((noreturn));
void qcc_fault(void) __attribute__((noreturn));
void qcc_systick(void);

__attribute__((section(".vectors"), used)) static void (*const qcc_vectors[16])(void) = {
    (void (*)(void))(uintptr_t)__stack_top,
    qcc_reset,
    qcc_fault, /* NMI */
    qcc_fault, /* HardFault */
    qcc_fault, /* MemManage */
    qcc_fault, /* BusFault */
    qcc_fault, /* UsageFault */
    0, 0, 0, 0,
    qcc_fault, /* SVC */
    qcc_fault, /* DebugMon */
    0,
    qcc_fault, /* PendSV */
    qcc_systick,
};

void qcc_reset(void)
{
    uint32_t *src = __data_load, *dst = __data_start;
    while (dst < __data_end) *dst++ = *src++;
    for (dst = __bss_start; dst < __bss_end;) *dst++ = 0;
#if defined(__ARM_FP)
    SCB_CPACR |= 0xFu << 20; /* full access to CP10/CP11 */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    qcc_sh_exit(main());
}

void qcc_fault(void)
{
    qcc_sh_puts("qcc: fault exception on the target\n");
    qcc_sh_exit(70);
}

void qcc_systick(void) { qcc_systick_wraps++; }

void qcc_counter_start(void)
{
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* enable, interrupt on wrap, processor clock */
    while (SYST_CVR == 0) {
    } /* wait for the first reload, then count from there */
    qcc_systick_wraps = 0;
}

/* Spins until SysTick's value changes, i.e. to a tick boundary; returns that
   boundary in instructions and sets *spins to the loop iterations. Under icount a
   read of SysTick happens at its exact instruction, so the boundary is known to
   within one iteration (4 instructions). A change that is the wrap itself raises
   the wrap interrupt only after the read: the count is one wrap ahead then. */
static inline __attribute__((always_inline)) uint64_t qcc_tick_sync(uint32_t *spins)
{
    uint32_t w = qcc_systick_wraps, v0, v, k;
    __asm__ volatile("    ldr %[v0], [%[cvr]]\n"
                     "    movs %[k], #0\n"
                     "1:  ldr %[v], [%[cvr]]\n"
                     "    adds %[k], %[k], #1\n"
                     "    cmp %[v], %[v0]\n"
                     "    beq 1b\n"
                     : [v0] "=&r"(v0), [v] "=&r"(v), [k] "=&l"(k)
                     : [cvr] "r"(&SYST_CVR)
                     : "cc", "memory");
    if (v > v0) w++;
    *spins = k;
    return (((uint64_t)w << 24) + (0xFFFFFFu - v)) * QCC_TICK_INSNS;
}

uint64_t qcc_counter_begin(void)
{
    uint32_t k;
    return qcc_tick_sync(&k);
}

uint64_t qcc_counter_end(void)
{
    uint32_t k;
    uint64_t t = qcc_tick_sync(&k);
    return t - 4u * (uint64_t)k;
}
