# The benchmark models, shared by bench/run.sh, bench/compare-llama.sh and
# bench/moe-rss.sh (sourced, not run). Each line: file name, `moelite synth`
# preset, weight type, layers (0: the preset's). Files are made once with
# random weights and cached in $BENCH_DIR; delete them to regenerate.
#
# Types are the converter's recipes: "q4_k_m" is llama.cpp's Q4_K_M mix (Q6_K
# for the output and for attn_v / ffn_down in about half the layers, Q4_K for
# the rest, and llama.cpp's fallbacks where a row does not fit 256-element
# blocks: V2-Lite's 1408-wide expert down-projections become Q5_0 or Q8_0).
BENCH_MODELS=(
    "r1-qwen-1.5b-q4_0.gguf r1-qwen-1.5b q4_0 0"
    "r1-qwen-1.5b-q4_k_m.gguf r1-qwen-1.5b q4_k_m 0"
    "r1-qwen-1.5b-q8_0.gguf r1-qwen-1.5b q8_0 0"
    "deepseek-v2-lite-8l-q4_k_m.gguf deepseek-v2-lite q4_k_m 8"
)
# The whole of DeepSeek-V2-Lite (27 layers, 15.7B parameters, ~10 GB), for
# bench/moe-rss.sh.
V2_LITE_FULL="deepseek-v2-lite-q4_k_m.gguf deepseek-v2-lite q4_k_m 0"

# ensure_bench_model MOELITE DIR "LINE": makes the file when missing (through a
# temporary name, so an interrupted run leaves nothing half-written), prints its path.
ensure_bench_model() {
    local moelite=$1 dir=$2 file preset type layers
    read -r file preset type layers <<<"$3"
    if [[ ! -s "$dir/$file" ]]; then
        local layer_args=()
        [[ "$layers" != 0 ]] && layer_args=(--layers "$layers")
        echo "generating $dir/$file ($preset, $type${layer_args[*]:+, $layers layers})" >&2
        "$moelite" synth --preset "$preset" --type "$type" "${layer_args[@]}" -o "$dir/$file.part" >&2
        mv "$dir/$file.part" "$dir/$file"
    fi
    echo "$dir/$file"
}
