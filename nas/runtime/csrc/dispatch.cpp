// Which kernel paths this CPU can run (compiled with no target flags: safe on every CPU).
#include <string.h>

#define EXPORT extern "C" __attribute__((visibility("default")))

EXPORT int bimtdp_cpu_supports(const char* isa) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();  // also checks that the OS saves the vector registers (XCR0)
    if (strcmp(isa, "avx512") == 0)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512vpopcntdq");
    if (strcmp(isa, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
#endif
    return strcmp(isa, "portable") == 0;
}
