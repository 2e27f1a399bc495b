#!/usr/bin/env bash
# The end-to-end runs of docs/results.md on the real recordings in ../shared/data (CPU-sized models):
# tokenizer -> FM pretraining -> subject-independent cross-validation beside supervised baselines on the same
# folds, and the tokenizer's reconstruction table on the held-out subject.
#   bash scripts/e2e_results.sh semg     # sEMG armband, 22 motions, leave-one-subject-out (the headline)
#   bash scripts/e2e_results.sh eeg      # EEGMMIDB eyes open/closed (S001, S003) and motor imagery (S001, by run)
# Every step writes runs/e2e/<step>.log and appends "<step> <seconds>" to runs/e2e/timings.tsv; a finished step
# is skipped when the script runs again (delete runs/e2e/.done_<step> to redo it). NEURORVQ_DATA overrides the
# data folder, FT_EPOCHS the fine-tuning epochs (default: the official 20).
set -euo pipefail
cd "$(dirname "$0")/.."
NRVQ=${NEURORVQ:-.venv/bin/neurorvq}
DATA=${NEURORVQ_DATA:-../shared/data}
ARMBAND=$DATA/long-term-semg-armband/data
EEG=$DATA/eegmmidb
OUT=runs/e2e
mkdir -p "$OUT"

step() {  # step NAME COMMAND...
  local name=$1; shift
  if [ -f "$OUT/.done_$name" ]; then echo "[e2e] $name: done before, skipped"; return; fi
  echo "[e2e] $name: $*"
  local start=$SECONDS
  "$@" > "$OUT/$name.log" 2>&1 || { echo "[e2e] $name failed: see $OUT/$name.log"; exit 1; }
  printf '%s\t%s\n' "$name" "$((SECONDS - start))" >> "$OUT/timings.tsv"
  touch "$OUT/.done_$name"
  echo "[e2e] $name: $((SECONDS - start)) s"
}

quiet=(--trainer.enable_progress_bar=false --trainer.enable_model_summary=false)

semg() {
  local cv=(cv --config recipes/finetune/semg_armband.yaml --folds 5 --val_fraction 0.25
            --data.init_args.root="$ARMBAND" "${quiet[@]}" --trainer.max_epochs="${FT_EPOCHS:-20}")
  local folds=$OUT/cv/semg/fm/folds.json
  step semg_tokenizer "$NRVQ" fit --config recipes/e2e/semg_tokenizer.yaml --data.init_args.root="$ARMBAND"
  step semg_reconstruct "$NRVQ" reconstruct --ckpt $OUT/semg_tokenizer/checkpoints/last.ckpt \
       --data recipes/e2e/semg_tokenizer.yaml --split test --set+ "root=$ARMBAND" --figure $OUT/semg_reconstruction.png
  step semg_fm "$NRVQ" fit --config recipes/e2e/semg_fm.yaml --data.init_args.root="$ARMBAND"
  step semg_cv_fm "$NRVQ" "${cv[@]}" --out $OUT/cv/semg/fm --name "NeuroRVQ-FM (pretrained)" \
       --model.init_args.fm=$OUT/semg_fm/checkpoints/last.ckpt
  step semg_cv_scratch "$NRVQ" "${cv[@]}" --out $OUT/cv/semg/scratch --folds_file $folds \
       --name "NeuroRVQ-FM (no pretraining)" --model.init_args.fm=null "--model.init_args.fm_overrides={depth: 4}"
  step semg_cv_eegnet "$NRVQ" "${cv[@]}" --out $OUT/cv/semg/eegnet --folds_file $folds --baseline eegnet --name EEGNet
  step semg_cv_shallow "$NRVQ" "${cv[@]}" --out $OUT/cv/semg/shallow --folds_file $folds --baseline shallow_convnet \
       --name ShallowConvNet
  "$NRVQ" cv-report $OUT/cv/semg/fm $OUT/cv/semg/scratch $OUT/cv/semg/eegnet $OUT/cv/semg/shallow \
       --out $OUT/cv/semg/table.md
}

eeg() {
  local common=(--data.init_args.root="$EEG" "${quiet[@]}" --trainer.precision=32
                --trainer.max_epochs="${FT_EPOCHS:-20}" --val_fraction 0)
  local eyes=(cv --config recipes/finetune/eegmmidb_eyes.yaml --folds 2 --data.init_args.subjects=[1,3] "${common[@]}")
  local mi=(cv --config recipes/finetune/eegmmidb_motor_imagery.yaml --folds 3 --group_by recording
            --data.init_args.subjects=[1] "${common[@]}" --task "EEGMMIDB imagery L/R, S001 by run (within-subject)")
  local fm=$OUT/eeg_fm/checkpoints/last.ckpt
  step eeg_tokenizer "$NRVQ" fit --config recipes/e2e/eeg_tokenizer.yaml --data.init_args.root="$EEG"
  step eeg_reconstruct "$NRVQ" reconstruct --ckpt $OUT/eeg_tokenizer/checkpoints/last.ckpt \
       --data recipes/e2e/eeg_tokenizer.yaml --split test --set+ "root=$EEG" --figure $OUT/eeg_reconstruction.png
  step eeg_fm "$NRVQ" fit --config recipes/e2e/eeg_fm.yaml --data.init_args.root="$EEG"
  step eyes_cv_fm "$NRVQ" "${eyes[@]}" --out $OUT/cv/eyes/fm --name "NeuroRVQ-FM (pretrained)" --model.init_args.fm=$fm
  step eyes_cv_scratch "$NRVQ" "${eyes[@]}" --out $OUT/cv/eyes/scratch --folds_file $OUT/cv/eyes/fm/folds.json \
       --name "NeuroRVQ-FM (no pretraining)" --model.init_args.fm=null "--model.init_args.fm_overrides={depth: 4}"
  step eyes_cv_eegnet "$NRVQ" "${eyes[@]}" --out $OUT/cv/eyes/eegnet --folds_file $OUT/cv/eyes/fm/folds.json \
       --baseline eegnet --name EEGNet
  step eyes_cv_shallow "$NRVQ" "${eyes[@]}" --out $OUT/cv/eyes/shallow --folds_file $OUT/cv/eyes/fm/folds.json \
       --baseline shallow_convnet --name ShallowConvNet
  step mi_cv_fm "$NRVQ" "${mi[@]}" --out $OUT/cv/mi/fm --name "NeuroRVQ-FM (pretrained)" --model.init_args.fm=$fm
  step mi_cv_scratch "$NRVQ" "${mi[@]}" --out $OUT/cv/mi/scratch --folds_file $OUT/cv/mi/fm/folds.json \
       --name "NeuroRVQ-FM (no pretraining)" --model.init_args.fm=null "--model.init_args.fm_overrides={depth: 4}"
  step mi_cv_eegnet "$NRVQ" "${mi[@]}" --out $OUT/cv/mi/eegnet --folds_file $OUT/cv/mi/fm/folds.json \
       --baseline eegnet --name EEGNet
  step mi_cv_shallow "$NRVQ" "${mi[@]}" --out $OUT/cv/mi/shallow --folds_file $OUT/cv/mi/fm/folds.json \
       --baseline shallow_convnet --name ShallowConvNet
  "$NRVQ" cv-report $OUT/cv/eyes/fm $OUT/cv/eyes/scratch $OUT/cv/eyes/eegnet $OUT/cv/eyes/shallow --out $OUT/cv/eyes/table.md
  "$NRVQ" cv-report $OUT/cv/mi/fm $OUT/cv/mi/scratch $OUT/cv/mi/eegnet $OUT/cv/mi/shallow --out $OUT/cv/mi/table.md
}

case "${1:-all}" in
  semg) semg ;;
  eeg) eeg ;;
  all) semg; eeg ;;
  *) echo "usage: $0 [semg|eeg|all]"; exit 2 ;;
esac
