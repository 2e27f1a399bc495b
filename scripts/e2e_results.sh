#!/usr/bin/env bash
# The end-to-end runs of docs/results.md on the real recordings in ../shared/data (CPU-sized models):
# tokenizer -> one FM pretrained per cross-validation fold on that fold's training subjects only -> subject-
# independent cross-validation of the pretrained FM, its from-scratch twin, linear probes, supervised and
# classical baselines on identical folds (training seeds, equal selection budgets) -> paired difference,
# pretraining curve, and the tokenizer's reconstruction and codebook usage on the held-out subject.
#   bash scripts/e2e_results.sh semg     # sEMG armband, 22 motions, leave-one-subject-out (the headline, ~8 h)
#   bash scripts/e2e_results.sh eeg      # EEGMMIDB eyes open/closed (S001, S003) and motor imagery (S001 by run)
#   bash scripts/e2e_results.sh brainrvq_eeg  # BrainRVQ's tokenizer and FM rows of the same EEG tasks, same folds
# Every step writes runs/e2e/<step>.log and appends "<step> <seconds>" to runs/e2e/timings.tsv; a finished step
# is skipped when the script runs again and an interrupted one resumes (fits from last.ckpt, cv fold by fold;
# to redo a step, delete runs/e2e/.done_<step> and the step's output folder). NEURORVQ_DATA overrides the data folder, SEEDS the training
# seeds of the headline (default "0 1 2"), FT_EPOCHS the fine-tuning epochs (default: the official 20).
# E2E_QUICK=1 checks the whole chain in minutes (2 batches per epoch, 1 epoch, 1 seed) into runs/e2e_quick.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
NRVQ=$(realpath "${NEURORVQ:-.venv/bin/neurorvq}")
PY=$(dirname "$NRVQ")/python
DATA=$(realpath "${NEURORVQ_DATA:-../shared/data}")
ARMBAND=$DATA/long-term-semg-armband/data
EEG=$DATA/eegmmidb
OUT=$REPO/runs/e2e
read -r -a SEEDS <<< "${SEEDS:-0 1 2}"
QUICK=()        # extra trainer arguments of every fit and cv run
FM_QUICK=()     # and of the FM pretraining runs
FM_EPOCHS=15    # recipes/e2e/semg_fm.yaml's max_epochs; snapshots every SNAPSHOT epochs give the curve's points
SNAPSHOT=5
if [ "${E2E_QUICK:-0}" = 1 ]; then
  OUT=$REPO/runs/e2e_quick; SEEDS=(0); FT_EPOCHS=1; FM_EPOCHS=3; SNAPSHOT=2  # (every 1 epoch would clash with
  # the recipe's own ModelCheckpoint: Lightning refuses two with the same state key)
  QUICK=(--trainer.max_epochs=1 --trainer.limit_train_batches=2 --trainer.limit_val_batches=2)
  FM_QUICK=(--trainer.max_epochs=$FM_EPOCHS)
fi
mkdir -p "$OUT"

step() {  # step NAME COMMAND...
  local name=$1; shift
  if [ -f "$OUT/.done_$name" ]; then echo "[e2e] $name: done before, skipped"; return; fi
  echo "[e2e] $name: $*"
  local start=$SECONDS
  "$@" >> "$OUT/$name.log" 2>&1 || { echo "[e2e] $name failed: see $OUT/$name.log"; exit 1; }
  printf '%s\t%s\n' "$name" "$((SECONDS - start))" >> "$OUT/timings.tsv"
  touch "$OUT/.done_$name"
  echo "[e2e] $name: $((SECONDS - start)) s"
}

resume() {  # resume CKPT: --ckpt_path=CKPT when an interrupted fit left it
  if [ -f "$1" ]; then echo "--ckpt_path=$1"; fi
}

fold_field() {  # fold_field FOLDS.json K FIELD: the fold's subjects of FIELD as numbers, e.g. "[3]" or "[1, 2]"
  "$PY" -c 'import json, re, sys
fold = json.load(open(sys.argv[1]))["folds"][int(sys.argv[2])]
print("[" + ", ".join(re.sub(r"\D", "", str(s)).lstrip("0") for s in fold[sys.argv[3]]) + "]")' "$@"
}

fold_count() {  # fold_count FOLDS.json
  "$PY" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["folds"]))' "$1"
}

last_ckpt() {  # last_ckpt DIR RECIPE: where fit_in leaves the recipe's last checkpoint
  echo "$1/runs/e2e/$(basename "$2" .yaml)/checkpoints/last.ckpt"
}

finished() {  # finished CKPT RECIPE ARGS...: whether CKPT already reached the run's max_epochs (last one in ARGS,
  local ckpt=$1 recipe=$2; shift 2  # else the recipe's), e.g. a fit that ended before its step was recorded
  local epochs; epochs=$(printf '%s\n' "$@" | sed -n 's/^--trainer\.max_epochs=//p' | tail -n 1)
  "$PY" - "$ckpt" "$REPO/$recipe" "$epochs" <<'PY'
import sys

import yaml

from neurorvq.cli.lightning_cli import finished_training

ckpt, recipe, epochs = sys.argv[1:4]
epochs = int(epochs) if epochs else (yaml.safe_load(open(recipe)).get("trainer") or {}).get("max_epochs")
sys.exit(0 if finished_training(ckpt, epochs, None) else 1)
PY
}

fit_in() {  # fit_in DIR RECIPE ARGS...: neurorvq fit of an e2e recipe inside DIR (its relative paths land there)
  local dir=$1 recipe=$2; shift 2
  mkdir -p "$dir"
  local last; last=$(last_ckpt "$dir" "$recipe")
  if [ -f "$last" ] && finished "$last" "$recipe" "${QUICK[@]}" "$@"; then
    echo "[e2e] $last finished before: not trained again"; return 0
  fi
  (cd "$dir" && "$NRVQ" fit --config "$REPO/$recipe" "${QUICK[@]}" "$@" --trainer.enable_progress_bar=false \
     $(resume "$(last_ckpt . "$recipe")")) || return 1
}

pretrain_fold() {  # pretrain_fold RECIPE DIR TOKENIZER ARGS...: one FM in DIR, with snapshots every SNAPSHOT epochs
  local recipe=$1 dir=$2 tokenizer=$3; shift 3
  fit_in "$dir" "$recipe" "${FM_QUICK[@]}" --model.init_args.tokenizer="$tokenizer" "$@" \
     --trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint --trainer.callbacks.dirpath=snapshots \
     --trainer.callbacks.every_n_epochs="$SNAPSHOT" --trainer.callbacks.save_top_k=-1 || return 1
  local epochs snap
  for epochs in $(seq "$SNAPSHOT" "$SNAPSHOT" 100); do  # names that do not depend on the steps
    snap=$(ls "$dir"/snapshots/epoch=$((epochs - 1))-*.ckpt 2>/dev/null | head -n 1)
    if [ -n "$snap" ]; then ln -sfn "$snap" "$dir/after_${epochs}_epochs.ckpt"; fi
  done
}

quiet=(--trainer.enable_progress_bar=false --trainer.enable_model_summary=false)
LR_GRID=(--grid "model.init_args.lr=[1e-3, 5e-4, 1e-4]")

semg() {
  local cv=(cv --config recipes/finetune/semg_armband.yaml --folds 5 --val_fraction 0.25
            --data.init_args.root="$ARMBAND" "${quiet[@]}" "${QUICK[@]}" --trainer.max_epochs="${FT_EPOCHS:-20}")
  local o=$OUT/cv/semg tok; tok=$(last_ckpt "$OUT/semg_tokenizer" recipes/e2e/semg_tokenizer.yaml)
  step semg_tokenizer fit_in "$OUT/semg_tokenizer" recipes/e2e/semg_tokenizer.yaml --data.init_args.root="$ARMBAND"
  step semg_reconstruct "$NRVQ" reconstruct --ckpt "$tok" --data recipes/e2e/semg_tokenizer.yaml --split test \
       --set+ "root=$ARMBAND" --figure "$OUT/semg_reconstruction.png"
  # the classical baseline first: seconds, and it writes the folds every other run (and the pretraining) uses
  step semg_cv_logpower "$NRVQ" "${cv[@]}" --out "$o/logpower" --baseline logpower --seeds "${SEEDS[@]}" \
       --name "log-power + logistic"
  local folds=$o/logpower/folds.json
  for k in $(seq 0 $(( $(fold_count "$folds") - 1 ))); do
    step "semg_fm_fold$k" pretrain_fold recipes/e2e/semg_fm.yaml "$OUT/semg_fm_fold$k" "$tok" \
         --data.init_args.root="$ARMBAND" --data.init_args.test_subjects="$(fold_field "$folds" "$k" test_subjects)" \
         --data.init_args.val_subjects="$(fold_field "$folds" "$k" val_subjects)"
  done
  local fm=$OUT/semg_fm_fold{fold} last; last=$(last_ckpt . recipes/e2e/semg_fm.yaml)
  local same=(--folds_file "$folds" --seeds "${SEEDS[@]}")
  step semg_cv_riemann "$NRVQ" "${cv[@]}" --out "$o/riemann" "${same[@]}" --baseline riemann \
       --name "Riemann tangent space + logistic"
  step semg_cv_pretrained "$NRVQ" "${cv[@]}" --out "$o/pretrained" "${same[@]}" "${LR_GRID[@]}" \
       --name "FM pretrained ($FM_EPOCHS epochs)" --model.init_args.fm="$fm/${last#./}"
  step semg_cv_scratch "$NRVQ" "${cv[@]}" --out "$o/scratch" "${same[@]}" "${LR_GRID[@]}" --name "FM from scratch" \
       --model.init_args.fm=null "--model.init_args.fm_overrides={depth: 4}"
  step semg_cv_probe_mean "$NRVQ" "${cv[@]}" --out "$o/probe_mean" "${same[@]}" --baseline linear_probe \
       --name "linear probe (mean pooling)" --model.init_args.pooling=mean \
       --model.init_args.fm="$fm/${last#./}"
  step semg_cv_probe_channels "$NRVQ" "${cv[@]}" --out "$o/probe_channels" "${same[@]}" --baseline linear_probe \
       --name "linear probe (channel_concat)" --model.init_args.fm="$fm/${last#./}"
  step semg_cv_probe_random "$NRVQ" "${cv[@]}" --out "$o/probe_random" "${same[@]}" --baseline linear_probe \
       --name "linear probe (channel_concat) on a random FM" --model.init_args.fm=null \
       "--model.init_args.fm_overrides={depth: 4}"   # the control the probe on pretrained features must beat
  step semg_cv_eegnet "$NRVQ" "${cv[@]}" --out "$o/eegnet" "${same[@]}" "${LR_GRID[@]}" --baseline eegnet --name EEGNet
  step semg_cv_shallow "$NRVQ" "${cv[@]}" --out "$o/shallow" "${same[@]}" "${LR_GRID[@]}" --baseline shallow_convnet \
       --name ShallowConvNet
  "$NRVQ" cv-report "$o"/{pretrained,scratch,probe_channels,probe_random,probe_mean,eegnet,shallow,logpower,riemann} \
       --out "$o/table.md"
  "$NRVQ" cv-report --paired "$o/pretrained" "$o/scratch" --out "$o/paired.md"
  # the pretraining curve: the snapshots (every SNAPSHOT of the FM_EPOCHS epochs), first seed only
  local points=(0="$o/scratch")
  for epochs in $(seq "$SNAPSHOT" "$SNAPSHOT" $((FM_EPOCHS - 1))); do
    step "semg_cv_curve$epochs" "$NRVQ" "${cv[@]}" --out "$o/curve$epochs" --folds_file "$folds" --seeds "${SEEDS[0]}" \
         "${LR_GRID[@]}" --name "FM pretrained ($epochs epochs)" "--model.init_args.fm=$fm/after_${epochs}_epochs.ckpt"
    points+=("$epochs=$o/curve$epochs")
  done
  "$NRVQ" cv-report --curve "${points[@]}" "$FM_EPOCHS=$o/pretrained" --seeds "${SEEDS[0]}" \
       --figure "$OUT/semg_pretraining_curve.png" --reference "$o/logpower" --chance 0.045 --out "$o/curve.md"
}

eeg() {
  local common=(--data.init_args.root="$EEG" "${quiet[@]}" "${QUICK[@]}" --trainer.precision=32
                --trainer.max_epochs="${FT_EPOCHS:-20}" --val_fraction 0)
  local tok; tok=$(last_ckpt "$OUT/eeg_tokenizer" recipes/e2e/eeg_tokenizer.yaml)
  step eeg_tokenizer fit_in "$OUT/eeg_tokenizer" recipes/e2e/eeg_tokenizer.yaml --data.init_args.root="$EEG"
  step eeg_reconstruct "$NRVQ" reconstruct --ckpt "$tok" --data recipes/e2e/eeg_tokenizer.yaml --split test \
       --set+ "root=$EEG" --figure "$OUT/eeg_reconstruction.png"
  # one FM per subject (runs 1, 2, 3, 5; no imagery run): each eyes fold fine-tunes the FM of its training subject,
  # the motor-imagery folds (S001's imagery runs 4, 8, 12, which no pretraining saw) the S001 one
  for subject in 1 3; do
    step "eeg_fm_s$subject" pretrain_fold recipes/e2e/eeg_fm.yaml "$OUT/eeg_fm_s$subject" "$tok" \
         --data.init_args.root="$EEG" --data.init_args.subjects="[$subject]" '--data.init_args.test_subjects=[]'
  done
  local last; last=$(last_ckpt . recipes/e2e/eeg_fm.yaml); last=${last#./}
  # eyes open/closed, leave-one-subject-out over S001 and S003
  local eyes=(cv --config recipes/finetune/eegmmidb_eyes.yaml --folds 2 '--data.init_args.subjects=[1,3]' "${common[@]}")
  local e=$OUT/cv/eyes
  step eyes_cv_logpower "$NRVQ" "${eyes[@]}" --out "$e/logpower" --baseline logpower --name "log-power + logistic"
  local folds=$e/logpower/folds.json
  for k in 0 1; do  # fold k -> the FM of its training subject
    ln -sfn "$OUT/eeg_fm_s$(fold_field "$folds" "$k" train_subjects | tr -d '[]')" "$OUT/eeg_fm_eyes_fold$k"
  done
  eeg_rows "${eyes[@]}" -- "$e" "$folds" "$OUT/eeg_fm_eyes_fold{fold}/$last"
  # motor imagery within S001, leave-one-run-out
  local mi=(cv --config recipes/finetune/eegmmidb_motor_imagery.yaml --folds 3 --group_by recording
            '--data.init_args.subjects=[1]' "${common[@]}" --task "EEGMMIDB imagery L/R, S001 by run (within-subject)")
  local m=$OUT/cv/mi
  step mi_cv_logpower "$NRVQ" "${mi[@]}" --out "$m/logpower" --baseline logpower --name "log-power + logistic"
  eeg_rows "${mi[@]}" -- "$m" "$m/logpower/folds.json" "$OUT/eeg_fm_s1/$last"
}

eeg_rows() {  # eeg_rows CV_ARGS... -- OUT FOLDS FM: the other rows of an EEG smoke task, on the folds of FOLDS
  local args=()
  while [ "$1" != "--" ]; do args+=("$1"); shift; done
  local o=$2 folds=$3 fm=$4 t; t=$(basename "$2")
  local same=(--folds_file "$folds")
  step "${t}_cv_riemann" "$NRVQ" "${args[@]}" --out "$o/riemann" "${same[@]}" --baseline riemann \
       --name "Riemann tangent space + logistic"
  step "${t}_cv_pretrained" "$NRVQ" "${args[@]}" --out "$o/pretrained" "${same[@]}" --name "FM pretrained" \
       --model.init_args.fm="$fm"
  step "${t}_cv_scratch" "$NRVQ" "${args[@]}" --out "$o/scratch" "${same[@]}" --name "FM from scratch" \
       --model.init_args.fm=null "--model.init_args.fm_overrides={depth: 4}"
  step "${t}_cv_probe" "$NRVQ" "${args[@]}" --out "$o/probe" "${same[@]}" --baseline linear_probe \
       --name "linear probe (mean pooling)" --model.init_args.fm="$fm"
  step "${t}_cv_eegnet" "$NRVQ" "${args[@]}" --out "$o/eegnet" "${same[@]}" --baseline eegnet --name EEGNet
  step "${t}_cv_shallow" "$NRVQ" "${args[@]}" --out "$o/shallow" "${same[@]}" --baseline shallow_convnet \
       --name ShallowConvNet
  "$NRVQ" cv-report "$o"/{pretrained,scratch,probe,eegnet,shallow,logpower,riemann} --out "$o/table.md"
  "$NRVQ" cv-report --paired "$o/pretrained" "$o/scratch" --out "$o/paired.md"
}

brainrvq_eeg() {  # BrainRVQ's rows of the EEG smoke tasks (issue 16): its tokenizer, one FM per subject, fine-tuned
  # pretrained and from scratch on the folds of the NeuroRVQ rows (the logpower run draws them, seeded: the same
  # folds), with the same fine-tuning recipe, epochs and seed
  local common=(--data.init_args.root="$EEG" "${quiet[@]}" "${QUICK[@]}" --trainer.precision=32
                --trainer.max_epochs="${FT_EPOCHS:-20}" --val_fraction 0)
  local tok; tok=$(last_ckpt "$OUT/brainrvq_eeg_tokenizer" recipes/e2e/brainrvq_eeg_tokenizer.yaml)
  step brainrvq_eeg_tokenizer fit_in "$OUT/brainrvq_eeg_tokenizer" recipes/e2e/brainrvq_eeg_tokenizer.yaml \
       --data.init_args.root="$EEG"
  for subject in 1 3; do
    step "brainrvq_eeg_fm_s$subject" pretrain_fold recipes/e2e/brainrvq_eeg_fm.yaml "$OUT/brainrvq_eeg_fm_s$subject" \
         "$tok" --data.init_args.root="$EEG" --data.init_args.subjects="[$subject]" '--data.init_args.test_subjects=[]'
  done
  local last; last=$(last_ckpt . recipes/e2e/brainrvq_eeg_fm.yaml); last=${last#./}
  local scratch=("--model.init_args.fm_overrides={class_path: neurorvq.families.brainrvq_fm.BrainRVQFMOptions, \
init_args: {depth: 4}}")
  local eyes=(cv --config recipes/finetune/eegmmidb_eyes.yaml --folds 2 '--data.init_args.subjects=[1,3]' "${common[@]}")
  local e=$OUT/cv/eyes
  step eyes_cv_logpower "$NRVQ" "${eyes[@]}" --out "$e/logpower" --baseline logpower --name "log-power + logistic"
  local folds=$e/logpower/folds.json
  for k in 0 1; do
    ln -sfn "$OUT/brainrvq_eeg_fm_s$(fold_field "$folds" "$k" train_subjects | tr -d '[]')" \
            "$OUT/brainrvq_eeg_fm_eyes_fold$k"
  done
  step eyes_cv_brainrvq_pretrained "$NRVQ" "${eyes[@]}" --out "$e/brainrvq_pretrained" --folds_file "$folds" \
       --name "BrainRVQ FM pretrained" --model.init_args.fm="$OUT/brainrvq_eeg_fm_eyes_fold{fold}/$last"
  step eyes_cv_brainrvq_scratch "$NRVQ" "${eyes[@]}" --out "$e/brainrvq_scratch" --folds_file "$folds" \
       --name "BrainRVQ FM from scratch" --model.init_args.fm=null "${scratch[@]}"
  local mi=(cv --config recipes/finetune/eegmmidb_motor_imagery.yaml --folds 3 --group_by recording
            '--data.init_args.subjects=[1]' "${common[@]}" --task "EEGMMIDB imagery L/R, S001 by run (within-subject)")
  local m=$OUT/cv/mi
  step mi_cv_logpower "$NRVQ" "${mi[@]}" --out "$m/logpower" --baseline logpower --name "log-power + logistic"
  step mi_cv_brainrvq_pretrained "$NRVQ" "${mi[@]}" --out "$m/brainrvq_pretrained" \
       --folds_file "$m/logpower/folds.json" --name "BrainRVQ FM pretrained" \
       --model.init_args.fm="$OUT/brainrvq_eeg_fm_s1/$last"
  step mi_cv_brainrvq_scratch "$NRVQ" "${mi[@]}" --out "$m/brainrvq_scratch" --folds_file "$m/logpower/folds.json" \
       --name "BrainRVQ FM from scratch" --model.init_args.fm=null "${scratch[@]}"
  for o in "$e" "$m"; do
    "$NRVQ" cv-report "$o"/brainrvq_{pretrained,scratch} "$o"/logpower --out "$o/brainrvq_table.md"
    "$NRVQ" cv-report --paired "$o/brainrvq_pretrained" "$o/brainrvq_scratch" --out "$o/brainrvq_paired.md"
  done
}

case "${1:-all}" in
  semg) semg ;;
  eeg) eeg ;;
  brainrvq_eeg) brainrvq_eeg ;;
  all) semg; eeg; brainrvq_eeg ;;
  *) echo "usage: $0 [semg|eeg|brainrvq_eeg|all]"; exit 2 ;;
esac
