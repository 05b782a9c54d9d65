#!/usr/bin/env bash
# Every relative link in the project's Markdown files points to a file that
# exists and, after '#', to a heading in it (GitHub's anchors: lower case,
# punctuation dropped, spaces as '-', a repeated heading gets -1, -2, ...).
# Links to web pages (scheme:...) are not followed. Code blocks and code
# spans are not text, so their brackets are not links.
#   links_test.sh SOURCE_DIR
# Exit 0 when every link resolves, 1 naming each one that does not.
set -euo pipefail
export LC_ALL=C
root=$(cd "${1:?usage: links_test.sh SOURCE_DIR}" && pwd)

# The text of a file outside code blocks and code spans, one output line per
# input line (so line numbers hold).
prose() {
  awk '/^[ \t]*(```|~~~)/ { fence = !fence; print ""; next }
       fence { print ""; next }
       { gsub(/`[^`]*`/, ""); print }' "$1"
}

# The anchors of a file's headings, one a line (taken from the raw heading:
# a code span's text counts in its anchor).
anchors() {
  awk '/^[ \t]*(```|~~~)/ { fence = !fence; next }
       !fence && /^#+[ \t]/ {
      s = $0
      sub(/^#+[ \t]+/, "", s); sub(/[ \t]+#*[ \t]*$/, "", s)
      s = tolower(s)
      gsub(/[!-,.\/:-@[-^`{-~]/, "", s)
      gsub(/ /, "-", s)
      n = seen[s]++
      print (n ? s "-" n : s)
    }' "$1"
}

# "LINE<TAB>TARGET" for each inline link [text](target) of a file.
links() {
  prose "$1" | awk '{
      line = $0
      while (match(line, /\]\([^) \t]+[^)]*\)/)) {
        t = substr(line, RSTART + 2, RLENGTH - 3)
        sub(/[ \t].*$/, "", t)  # a title after the target
        print NR "\t" t
        line = substr(line, RSTART + RLENGTH)
      }
    }'
}

failures=0 checked=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

mapfile -t files < <(cd "$root" && find . -name '*.md' -not -path './build*' -not -path './.git/*' -not -path '*/corpus/*' | sed 's|^\./||' | sort)
((${#files[@]} > 0)) || { echo "FAIL: no Markdown files under $root"; exit 1; }
for file in "${files[@]}"; do
  dir=$(dirname "$file")
  while IFS=$'\t' read -r line target; do
    [[ -n $target ]] || continue
    [[ $target =~ ^[a-zA-Z][a-zA-Z0-9+.-]*: ]] && continue  # https:, mailto:
    checked=$((checked + 1))
    path=${target%%#*} anchor=""
    [[ $target == *"#"* ]] && anchor=${target#*#}
    if [[ -z $path ]]; then
      to=$file
    else
      to=$(realpath -m --relative-to="$root" "$root/$dir/$path")
      if [[ ! -e $root/$to ]]; then
        fail "$file:$line: link '$target': no file '$to'"
        continue
      fi
    fi
    if [[ -n $anchor ]]; then
      if [[ ! -f $root/$to ]]; then
        fail "$file:$line: link '$target': '$to' is not a file, so it has no heading '#$anchor'"
      elif ! anchors "$root/$to" | grep -qxF -- "$anchor"; then
        fail "$file:$line: link '$target': no heading in '$to' has the anchor '#$anchor'"
      fi
    fi
  done < <(links "$root/$file")
done
echo "$checked relative links in ${#files[@]} Markdown files, $failures broken"
((failures == 0))
