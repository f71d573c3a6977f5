// CPU feature detection and the choice of instruction set (quant/kernels.h).
//
// An ISA is usable when the CPU reports its instructions (CPUID) and the OS
// saves the registers they use (XCR0, read with XGETBV, which is only legal
// once CPUID reports OSXSAVE). AMX additionally needs the process to ask Linux
// for the tile-data state (arch_prctl ARCH_REQ_XCOMP_PERM), which we do only
// on CPUs that report AMX. This file is built for baseline x86-64: it tests
// bits, it never executes the instructions it detects.
//
// The ISAs are ordered, each a superset of the one below (Avx2 means AVX2 +
// FMA + F16C + BMI2, the flags kernels_avx2.cpp is built with), so a cap is a
// minimum and the supported set is a prefix of the enum.
#include <cctype>
#include <cstdlib>
#include <string>

#include "core/log.h"
#include "quant/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define MOELITE_X86 1
#endif

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace moelite {
namespace {

constexpr Isa kAllIsas[] = {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni, Isa::Amx};

#ifdef MOELITE_X86
struct CpuidRegs {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
};

CpuidRegs cpuid(unsigned leaf, unsigned subleaf) {
    CpuidRegs r;
    if (!__get_cpuid_count(leaf, subleaf, &r.eax, &r.ebx, &r.ecx, &r.edx)) return CpuidRegs{};
    return r;
}

bool bit(unsigned reg, int n) { return (reg >> n) & 1u; }

// XGETBV(0) by its encoding, so this file needs no -mxsave.
uint64_t read_xcr0() {
    unsigned lo = 0, hi = 0;
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t(hi) << 32) | lo;
}

// Linux gates the AMX tile data (XFEATURE_XTILEDATA, state component 18)
// behind a per-process permission; XCR0 alone says only that the kernel can
// manage it.
bool request_amx_permission() {
#if defined(__linux__) && defined(SYS_arch_prctl)
    constexpr unsigned long kArchGetXcompPerm = 0x1022;
    constexpr unsigned long kArchReqXcompPerm = 0x1023;
    constexpr unsigned long kXfeatureXtiledata = 18;
    if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) {
        MOELITE_LOG_INFO("cpu: the kernel refused AMX tile state (arch_prctl); AMX disabled");
        return false;
    }
    unsigned long permitted = 0;
    if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &permitted) != 0) return false;
    return (permitted >> kXfeatureXtiledata) & 1u;
#else
    return false;
#endif
}

CpuFeatures detect() {
    CpuFeatures f;
    const CpuidRegs l0 = cpuid(0, 0);
    const unsigned max_leaf = l0.eax;
    if (max_leaf < 1) return f;
    const CpuidRegs l1 = cpuid(1, 0);
    const CpuidRegs l7 = max_leaf >= 7 ? cpuid(7, 0) : CpuidRegs{};
    const CpuidRegs l7s1 = (max_leaf >= 7 && l7.eax >= 1) ? cpuid(7, 1) : CpuidRegs{};

    f.fma = bit(l1.ecx, 12);
    f.avx = bit(l1.ecx, 28);
    f.f16c = bit(l1.ecx, 29);
    f.avx2 = bit(l7.ebx, 5);
    f.bmi2 = bit(l7.ebx, 8);
    f.avx512f = bit(l7.ebx, 16);
    f.avx512dq = bit(l7.ebx, 17);
    f.avx512bw = bit(l7.ebx, 30);
    f.avx512vl = bit(l7.ebx, 31);
    f.avx512vnni = bit(l7.ecx, 11);
    f.avx512bf16 = bit(l7s1.eax, 5);
    f.amx_bf16 = bit(l7.edx, 22);
    f.amx_tile = bit(l7.edx, 24);
    f.amx_int8 = bit(l7.edx, 25);

    const bool osxsave = bit(l1.ecx, 27);
    if (osxsave) {
        const uint64_t xcr0 = read_xcr0();
        f.os_avx = (xcr0 & 0x6) == 0x6;                 // SSE and AVX (YMM upper) state
        f.os_avx512 = f.os_avx && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM_Hi256, Hi16_ZMM
        const bool os_tiles = (xcr0 & 0x60000) == 0x60000;  // XTILECFG, XTILEDATA
        if (f.amx_tile && os_tiles) f.os_amx = request_amx_permission();
    }
    return f;
}
#else
CpuFeatures detect() { return CpuFeatures{}; }
#endif

Isa best_of(const CpuFeatures& f) {
    const bool avx2 = f.avx && f.avx2 && f.fma && f.f16c && f.bmi2 && f.os_avx;
    if (!avx2) return Isa::Scalar;
    const bool avx512 = f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.os_avx512;
    if (!avx512) return Isa::Avx2;
    if (!f.avx512vnni) return Isa::Avx512;
    const bool amx = f.amx_tile && f.amx_int8 && f.amx_bf16 && f.os_amx;
    return amx ? Isa::Amx : Isa::Avx512Vnni;
}

std::string isa_names_list() {
    std::string s;
    for (Isa isa : kAllIsas) {
        if (!s.empty()) s += ", ";
        s += isa_name(isa);
    }
    return s;
}

}  // namespace

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::Scalar: return "scalar";
        case Isa::Avx2: return "avx2";
        case Isa::Avx512: return "avx512";
        case Isa::Avx512Vnni: return "avx512vnni";
        case Isa::Amx: return "amx";
    }
    return "?";
}

const CpuFeatures& cpu_features() {
    static const CpuFeatures features = detect();
    return features;
}

Isa isa_machine_best() {
    static const Isa best = best_of(cpu_features());
    return best;
}

std::vector<Isa> isa_supported() {
    std::vector<Isa> out;
    for (Isa isa : kAllIsas) {
        if (int(isa) <= int(isa_machine_best())) out.push_back(isa);
    }
    return out;
}

std::optional<Isa> isa_from_name(std::string_view name) {
    for (Isa isa : kAllIsas) {
        const std::string_view candidate = isa_name(isa);
        if (candidate.size() != name.size()) continue;
        bool same = true;
        for (size_t i = 0; i < name.size() && same; ++i) {
            same = std::tolower(static_cast<unsigned char>(name[i])) == candidate[i];
        }
        if (same) return isa;
    }
    return std::nullopt;
}

Isa isa_parse_cap(const char* request, Isa machine_best) {
    if (request == nullptr || *request == '\0') return machine_best;
    const std::string_view text(request);
    if (text == "auto" || text == "AUTO") return machine_best;
    const std::optional<Isa> asked = isa_from_name(text);
    if (!asked) {
        MOELITE_LOG_WARN("MOELITE_ISA=%s is not one of auto, %s; using %s", request, isa_names_list().c_str(),
                         isa_name(machine_best));
        return machine_best;
    }
    if (int(*asked) > int(machine_best)) {
        MOELITE_LOG_WARN("MOELITE_ISA=%s asks for more than this machine supports; using %s", request,
                         isa_name(machine_best));
        return machine_best;
    }
    return *asked;
}

Isa isa_active() {
    static const Isa active = [] {
        const Isa isa = isa_parse_cap(std::getenv("MOELITE_ISA"), isa_machine_best());
        MOELITE_LOG_INFO("cpu: using %s kernels (machine best: %s)", isa_name(isa), isa_name(isa_machine_best()));
        return isa;
    }();
    return active;
}

}  // namespace moelite
