#include "convert/model_metadata.h"

#include <cmath>

#include "core/error.h"

namespace moelite {

std::vector<float> llama3_rope_factors(const HfConfig& c) {
    MOELITE_ASSERT(c.llama3_rope.has_value());
    const Llama3RopeFactors& f = *c.llama3_rope;
    const int64_t dim = c.hp.n_rot;
    // Computed in f32 like llama.cpp's converter (torch float32 tensors).
    const float base = c.hp.rope_freq_base;
    const float low_wavelen = float(f.original_context) / f.low_freq_factor;
    const float high_wavelen = float(f.original_context) / f.high_freq_factor;
    std::vector<float> out;
    for (int64_t i = 0; i < dim; i += 2) {
        const float freq = 1.0f / std::pow(base, float(i) / float(dim));
        const float wavelen = float(2.0 * M_PI) / freq;
        if (wavelen < high_wavelen) {
            out.push_back(1.0f);
        } else if (wavelen > low_wavelen) {
            out.push_back(f.factor);
        } else {
            const float smooth =
                (float(f.original_context) / wavelen - f.low_freq_factor) / (f.high_freq_factor - f.low_freq_factor);
            out.push_back(1.0f / ((1.0f - smooth) / f.factor + smooth));
        }
    }
    return out;
}

}  // namespace moelite
