#!/bin/sh
# Rewrites speech/names.txt: the first names Media Streams calls can greet a customer by, one
# `name_<id><TAB>Name` a line, sorted by id. Source: the 1990 US Census first-name frequency lists
# (public domain), as the PyPI package `names` 0.3.0 ships them (names/dist.female.first,
# names/dist.male.first: NAME, frequency %, cumulative %, rank). The TOP most frequent of each
# list (500: about 74% of women and 84% of men then), without repeats. Then run generate.sh.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top="${TOP:-500}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
command -v pip >/dev/null || { echo "pip missing: apt-get install -y python3-pip" >&2; exit 1; }
pip download --quiet --no-deps --no-binary :all: --dest "$work" names==0.3.0
tar -xzf "$work"/names-0.3.0.tar.gz -C "$work"
for list in female male; do
    head -n "$top" "$work/names-0.3.0/names/dist.$list.first"
done | awk '{ name = tolower($1); printf "name_%s\t%s%s\n", name, toupper(substr(name, 1, 1)), substr(name, 2) }' \
    | LC_ALL=C sort -u > "$here/names.txt"
echo "$(wc -l < "$here/names.txt") names in $here/names.txt"
