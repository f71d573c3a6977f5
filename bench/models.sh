# The benchmark models, shared by bench/run.sh and bench/compare-llama.sh
# (sourced, not run). Each line: file name, `moelite synth` preset, weight
# type, layers (0: the preset's). Files are made once with random weights and
# cached in $BENCH_DIR; delete them to regenerate.
#
# "q4_k" is every 2-D weight in Q4_K (the embedding and the output too). A
# real Q4_K_M file, as llama.cpp's quantizer writes it, is a mix: Q6_K for
# the output and for attn_v / ffn_down in about half the layers, Q4_K for the
# rest; it is somewhat larger and slower to decode than this all-Q4_K file.
BENCH_MODELS=(
    "r1-qwen-1.5b-q4_0.gguf r1-qwen-1.5b q4_0 0"
    "r1-qwen-1.5b-q4_k.gguf r1-qwen-1.5b q4_k 0"
    "r1-qwen-1.5b-q8_0.gguf r1-qwen-1.5b q8_0 0"
    "deepseek-v2-lite-8l-q4_k.gguf deepseek-v2-lite q4_k 8"
)

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
