#!/usr/bin/env bash
# Compiles every Hugging Face fixture into a program for the end-to-end tests: with -O as users
# get it, with every fusion disabled (the primitive ops' kernels must give the same answers),
# mqa_f32 as a bare GemmaModel, and the ONNX exports of test/fixtures/onnx. Two at a time (the machines have two cores).
#   compile-fixtures.sh GEMMAC OUTDIR
set -euo pipefail
gemmac="$1"
out="$2"
fixtures="$(cd "$(dirname "$0")/../fixtures/hf" && pwd)"
rm -rf "$out"
mkdir -p "$out"
no_fusions="--disable-pass fuse-rmsnorm --disable-pass fuse-rotary --disable-pass fuse-attention --disable-pass fuse-mlp --disable-pass fuse-softcap"
jobs=()
for fixture in mqa_f32 mha_untied_f32 gqa_exact_sharded_f32 mqa_bf16 mqa_f16 seq_cls_f32 token_cls_f32 \
    gemma2_gqa_f32 gemma3_mqa_f32 gemma3_mqa_bf16; do
  jobs+=("$fixture|$fixture|")
  jobs+=("$fixture|$fixture-unfused|$no_fusions")
done
for fixture in attention_bias_f32 gemma2_mha_f32 gemma2_seq_cls_f32 gemma2_token_cls_f32 \
    gemma3_linear_rope_f32 gemma3_seq_cls_f32 gemma3_multimodal_f32; do
  jobs+=("$fixture|$fixture|")
done
jobs+=("mqa_f32|mqa_f32-model|--head model")
for fixture in mqa_f32 mha_untied_f32 gqa_exact_sharded_f32; do
  jobs+=("$fixture|$fixture-bf16w|--weights-dtype bf16")
done
jobs+=("gqa_h16_f32|gqa_h16_f32|") # the checkpoint of the onnxruntime-genai export
for dtype in q8_0 q4_0; do
  jobs+=("gqa_h16_f32|gqa_h16_f32-${dtype}w|--weights-dtype $dtype")
  # The fast arithmetic's programs run only where the CPU has AVX512-VNNI (the test skips else).
  if grep -qw avx512_vnni /proc/cpuinfo; then
    jobs+=("gqa_h16_f32|gqa_h16_f32-${dtype}w-fast|--weights-dtype $dtype --arithmetic fast")
  fi
done
for export in mqa_f32_torchscript gqa_exact_sharded_f32_torchscript mqa_f32_torchscript_past \
    mqa_f32_torchscript_external mqa_f32_dynamo mqa_f32_optimum_past \
    gqa_exact_sharded_f32_optimum_past gqa_h16_f32_genai gemma3_mqa_f32_torchscript; do
  jobs+=("../onnx/$export|onnx-$export|")
done
# A checkpoint with tokenizer.json and no tokenizer.model: gemma3_mqa_f32's weights beside the
# tokenizer.json transformers saved for the fixture tokenizer (make_tokenizer_json_fixture.py).
json_checkpoint="$out/src/gemma3_tokenizer_json"
mkdir -p "$json_checkpoint"
cp "$fixtures"/gemma3_mqa_f32/{config.json,generation_config.json,model.safetensors} "$json_checkpoint"
cp "$fixtures/../tokenizer/tokenizer.json" "$json_checkpoint"
jobs+=("$json_checkpoint|gemma3_tokenizer_json|")
# The tiny GGUF models of each architecture (make_gguf_refs.py).
for arch in gemma gemma2 gemma3; do
  jobs+=("$fixtures/../gguf/tiny_$arch.gguf|gguf-tiny_$arch|")
done
printf '%s\n' "${jobs[@]}" | xargs -P 2 -I{} bash -c '
  IFS="|" read -r fixture name flags <<< "{}"
  model="$fixture"
  [[ "$model" == /* ]] || model="'"$fixtures"'/$fixture"
  if ! "'"$gemmac"'" compile "$model" -o "'"$out"'/$name" --name "$(basename "$fixture" .gguf)" $flags \
      > "'"$out"'/$name.log" 2>&1; then
    cat "'"$out"'/$name.log"; exit 1
  fi
  echo "compiled $name"'
