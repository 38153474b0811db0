#!/usr/bin/env bash
# Reads this machine's apt sources and answers what scripts/setup.sh needs to add Debian bookworm-backports
# (Mesa's lavapipe 25) from the same mirror the machine already uses, instead of a mirror written into the script.
#
# usage: bash scripts/apt-mirror.sh [--uri | --line | --has SUITE | --list]
#   --uri        (the default) prints the URI of the first enabled source of type deb that serves Debian's
#                bookworm suite with its main component, in apt's order (sources.list, then sources.list.d/ sorted);
#                suites ending in -security are never taken (a security mirror does not carry backports)
#   --line       prints the one-line source for bookworm-backports from that URI:
#                  deb [signed-by=KEYRING] URI bookworm-backports main
#                with the signed-by keyring of the bookworm source when it names one by path
#   --has SUITE  exits 0 when an enabled deb source already serves SUITE (either format), 1 when none does
#   --list       prints every enabled deb source entry, one per URI and suite, tab-separated:
#                  file  URI  suite  components  signed-by
# Both formats are read: one-line (sources.list, sources.list.d/*.list: "deb [opts] URI suite components...")
# and deb822 (sources.list.d/*.sources: stanzas of Types, URIs, Suites, Components, Signed-By, Enabled).
# LOSS_ATLAS_APT_DIR: the apt configuration folder to read (default /etc/apt; the tests point it at fake trees).
# Exit status: 0; 1 when no usable source is found (the message names the files read); 2 on a usage error.
set -euo pipefail
apt_dir="${LOSS_ATLAS_APT_DIR:-/etc/apt}"
apt_dir="${apt_dir%/}"
mode=uri; want=""
case "${1:-}" in
  ""|--uri) mode=uri ;;
  --line) mode=line ;;
  --list) mode=list ;;
  --has) mode=has; want="${2:-}"; [ -n "$want" ] || { echo "apt-mirror: --has needs a suite" >&2; exit 2; } ;;
  -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: apt-mirror.sh [--uri | --line | --has SUITE | --list]" >&2; exit 2 ;;
esac

# the files apt reads, in its order; those that exist go to awk
looked=("$apt_dir/sources.list")
shopt -s nullglob
parts=("$apt_dir"/sources.list.d/*.list "$apt_dir"/sources.list.d/*.sources)
shopt -u nullglob
if [ ${#parts[@]} -gt 0 ]; then
  mapfile -t parts < <(printf '%s\n' "${parts[@]}" | LC_ALL=C sort)
  looked+=("${parts[@]}")
else
  looked+=("$apt_dir/sources.list.d/*.list" "$apt_dir/sources.list.d/*.sources")
fi
files=()
for f in "${looked[@]}"; do [ -f "$f" ] && [ -r "$f" ] && files+=("$f"); done

# entries: file <TAB> URI <TAB> suite <TAB> components (space-separated) <TAB> signed-by (comma-separated paths, or "")
entries() {
  [ ${#files[@]} -gt 0 ] || return 0
  awk '
    function trim(s) { sub(/^[ \t\r]+/, "", s); sub(/[ \t\r]+$/, "", s); return s }
    # signed-by value kept only when it names keyring files (an inline key cannot go on one line)
    function keyrings(v,   n, i, t, out) {
      gsub(/,/, " ", v); n = split(v, t, /[ \t]+/); out = ""
      for (i = 1; i <= n; i++) { if (t[i] == "") continue; if (substr(t[i], 1, 1) != "/") return ""; out = out (out == "" ? "" : ",") t[i] }
      return out
    }
    function emit(file, uri, suite, comps, sb) { sub(/\/+$/, "", uri); gsub(/[ \t]+/, " ", comps); if (uri != "" && suite != "") print file "\t" uri "\t" suite "\t" comps "\t" sb }
    function flush(   n, m, i, j, u, s, types, isdeb, en) {
      if (!inst) return
      inst = 0
      en = tolower(trim(F["enabled"]))
      if (en == "no" || en == "false" || en == "off" || en == "disable" || en == "without") { split("", F); return }
      isdeb = 0; n = split(F["types"], types, /[ \t]+/)
      for (i = 1; i <= n; i++) if (types[i] == "deb") isdeb = 1
      if (isdeb) {
        n = split(trim(F["uris"]), u, /[ \t]+/); m = split(trim(F["suites"]), s, /[ \t]+/)
        for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) emit(sfile, u[i], s[j], trim(F["components"]), keyrings(F["signed-by"]))
      }
      split("", F)
    }
    FNR == 1 { flush(); deb822 = (FILENAME ~ /\.sources$/); field = "" }
    deb822 {
      if ($0 ~ /^#/) next
      if ($0 ~ /^[ \t\r]*$/) { flush(); field = ""; next }
      if ($0 ~ /^[ \t]/) { if (field != "") F[field] = F[field] " " trim($0); next }
      i = index($0, ":"); if (i == 0) next
      field = tolower(trim(substr($0, 1, i - 1))); F[field] = trim(substr($0, i + 1)); if (!inst) sfile = FILENAME; inst = 1
      next
    }
    {
      line = $0; sub(/#.*/, "", line); line = trim(line)
      if (line !~ /^deb[ \t]/) next
      line = trim(substr(line, 4)); sb = ""
      if (substr(line, 1, 1) == "[") {
        i = index(line, "]"); if (i == 0) next
        n = split(substr(line, 2, i - 2), o, /[ \t]+/)
        for (j = 1; j <= n; j++) if (tolower(o[j]) ~ /^signed-by=/) sb = keyrings(substr(o[j], 11))
        line = trim(substr(line, i + 1))
      }
      n = split(line, t, /[ \t]+/); if (n < 2) next
      comps = ""; for (j = 3; j <= n; j++) comps = comps (comps == "" ? "" : " ") t[j]
      emit(FILENAME, t[1], t[2], comps, sb)
    }
    END { flush() }
  ' "${files[@]}"
}

# the bookworm entry: suite exactly bookworm (never *-security), component main, not a cdrom
pick() {
  entries | awk -F'\t' '$3 == "bookworm" && $3 !~ /-security$/ && $2 !~ /^cdrom:/ && (" " $4 " ") ~ / main / { print; exit }'
}

none() {
  {
    echo "apt-mirror: no apt source serves Debian's bookworm suite (type deb, suite bookworm, component main;"
    echo "  *-security suites are not taken), so there is no mirror to add bookworm-backports from. Looked at:"
    for f in "${looked[@]}"; do
      if [ -f "$f" ]; then echo "    $f"; else echo "    $f (not there)"; fi
    done
    echo "  Add a bookworm source for your Debian mirror (or bookworm-backports itself) and run this again."
  } >&2
  exit 1
}

case "$mode" in
  list) entries ;;
  has) entries | awk -F'\t' -v s="$want" '$3 == s { found = 1 } END { exit found ? 0 : 1 }' ;;
  uri) e=$(pick); [ -n "$e" ] || none; printf '%s\n' "$e" | cut -f2 ;;
  line)
    e=$(pick); [ -n "$e" ] || none
    uri=$(printf '%s\n' "$e" | cut -f2); sb=$(printf '%s\n' "$e" | cut -f5)
    echo "deb ${sb:+[signed-by=$sb] }$uri bookworm-backports main" ;;
esac
