#!/bin/sh
# Regenerates speech/clips/<id>.ulaw from speech/phrases.txt and speech/names.txt (one `id<TAB>text` a line).
# Needs Debian's espeak-ng and sox. Output: raw 8 kHz mono 8-bit mu-law, silence trimmed at both ends.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
phrases="$here/phrases.txt"
clips="$here/clips"
voice="${VOICE:-en-us}"
speed="${SPEED:-160}"

command -v espeak-ng >/dev/null || { echo "espeak-ng missing: apt-get install -y espeak-ng" >&2; exit 1; }
command -v sox >/dev/null || { echo "sox missing: apt-get install -y sox" >&2; exit 1; }

rm -rf "$clips"
mkdir -p "$clips"
tab=$(printf '\t')
while IFS="$tab" read -r id text; do
    case "$id" in ''|'#'*) continue ;; esac
    [ -n "$text" ] || { echo "no text for $id" >&2; exit 1; }
    # -R -D: no random dither, so the same text gives the same bytes on every run.
    # silence 1 … trims leading silence; reverse/trim/reverse trims the trailing silence.
    espeak-ng -v "$voice" -s "$speed" --stdout -- "$text" \
        | sox -R -D -t wav - -t raw -e mu-law -r 8000 -c 1 -b 8 "$clips/$id.ulaw" \
            silence 1 0.01 0.5% reverse silence 1 0.01 0.5% reverse
    [ -s "$clips/$id.ulaw" ] || { echo "empty clip for $id" >&2; exit 1; }
done <<LINES
$(cat "$phrases" "$here/names.txt")
LINES
echo "$(ls "$clips" | wc -l) clips, $(du -sk "$clips" | cut -f1) KB in $clips"
