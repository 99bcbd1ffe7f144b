#!/usr/bin/env bash
# Installs a software Vulkan GPU (Mesa >= 25 lavapipe) so that LiteRT's GPU accelerator (ML Drift on
# WebGPU/Vulkan, shipped in ai-edge-litert) runs on a machine without a GPU. Debian bookworm's own
# Mesa 22 lavapipe is too old (WebGPU finds no adapter), so Mesa 25 is taken from <codename>-backports
# with a private apt state and unpacked (dpkg -x) into a cache folder; the system's apt sources and
# installed packages are left as they are, apart from installing libvulkan1 and mesa-vulkan-drivers.
#
#   eval "$(bash scripts/install_lavapipe.sh)"            # default folder $HOME/.cache/mobpose/lavapipe
#   eval "$(bash scripts/install_lavapipe.sh DIR)"        # or MOBPOSE_LAVAPIPE_DIR=DIR
#   bash scripts/install_lavapipe.sh --force [DIR]        # redo everything
#
# Prints only `export ...` lines on stdout (VK_ICD_FILENAMES, and LD_LIBRARY_PATH only when the unpacked
# driver cannot resolve its symbols against the system libraries); progress goes to stderr.
# Idempotent: a second run finds the stamp and prints the same lines without touching the network.
# No host name is written here: the archive's address is copied from the system's own sources file.
set -euo pipefail

FORCE=0
if [ "${1:-}" = "--force" ]; then FORCE=1; shift; fi
DIR=${1:-${MOBPOSE_LAVAPIPE_DIR:-$HOME/.cache/mobpose/lavapipe}}
MIN_MESA=25
PKG=mesa-vulkan-drivers
SYSTEM_PKGS=(libvulkan1 mesa-vulkan-drivers)

log() { echo "install_lavapipe: $*" >&2; }
die() { log "error: $*"; exit 1; }

installed_version() {  # prints the installed version of package $1, or nothing
  dpkg-query -W -f='${db:Status-Status} ${Version}\n' "$1" 2>/dev/null | awk '$1 == "installed" {print $2; exit}'
}

emit() {  # $1 = ICD json, $2 = library folder to prepend to LD_LIBRARY_PATH (or empty)
  printf 'export VK_ICD_FILENAMES=%q\n' "$1"
  if [ -n "$2" ]; then  # the caller's own LD_LIBRARY_PATH is expanded by the caller's eval
    # shellcheck disable=SC2016
    printf 'export LD_LIBRARY_PATH=%q${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}\n' "$2"
  fi
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
  else die "need root for: $* (run it as root once, then rerun this script)"
  fi
}

# 1. System packages: the Vulkan loader, and Debian's Mesa Vulkan drivers for their run-time libraries.
missing=()
for p in "${SYSTEM_PKGS[@]}"; do [ -n "$(installed_version "$p")" ] || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq >&2
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# 2. A system Mesa that is new enough needs nothing more (e.g. Debian trixie).
sysver=$(installed_version "$PKG")
if dpkg --compare-versions "$sysver" ge "$MIN_MESA"; then
  for j in /usr/share/vulkan/icd.d/lvp_icd*.json; do
    [ -e "$j" ] || continue
    log "system $PKG $sysver is new enough: using $j"
    emit "$j" ""
    exit 0
  done
fi

ICD="$DIR/lvp_icd.json"
STAMP="$DIR/.done"
if [ "$FORCE" = 0 ] && [ -f "$STAMP" ] && [ -f "$ICD" ]; then
  # shellcheck disable=SC1090
  . "$STAMP"   # sets LVP_LIB and LVP_LDPATH
  if [ -f "${LVP_LIB:-}" ]; then
    log "already done ($DIR)"
    emit "$ICD" "${LVP_LDPATH:-}"
    exit 0
  fi
fi

# 3. A private apt state with only <codename>-backports, its address copied from the system's sources.
# shellcheck disable=SC1091
. /etc/os-release
CODENAME=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}
SUITE="$CODENAME-backports"
APTDIR="$DIR/apt"
rm -rf "$APTDIR" "$DIR/root" "$DIR/debs" "$STAMP"
mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$APTDIR/sources.list.d" "$DIR/debs"
: > "$APTDIR/status"

src_files=()
[ -f /etc/apt/sources.list ] && src_files+=(/etc/apt/sources.list)
for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
  [ -f "$f" ] && src_files+=("$f")
done
found=0
for f in "${src_files[@]}"; do
  if [[ "$f" == *.sources ]]; then
    # deb822: the first stanza of type deb whose Suites has exactly $CODENAME, with Suites rewritten.
    awk -v want="$CODENAME" -v suite="$SUITE" '
      BEGIN { RS = ""; FS = "\n" }
      {
        deb = 0; hit = 0; out = ""
        for (i = 1; i <= NF; i++) {
          line = $i
          if (line ~ /^[ \t]*#/) continue
          if (line ~ /^Types:/ && line ~ /[ \t]deb([ \t]|$)/) deb = 1
          if (line ~ /^Enabled:[ \t]*no/) { deb = 0 }
          if (line ~ /^Suites:/) {
            n = split(substr(line, 8), s, /[ \t]+/)
            for (k = 1; k <= n; k++) if (s[k] == want) hit = 1
            line = "Suites: " suite
          }
          if (line ~ /^Types:/) line = "Types: deb"
          out = out line "\n"
        }
        if (deb && hit) { printf "%s", out; exit }
      }' "$f" > "$APTDIR/sources.list.d/backports.sources"
    if [ -s "$APTDIR/sources.list.d/backports.sources" ]; then found=1; break; fi
    rm -f "$APTDIR/sources.list.d/backports.sources"
  else
    # one-line format: "deb [options] URI SUITE COMPONENTS..."
    awk -v want="$CODENAME" -v suite="$SUITE" '
      $1 == "deb" {
        i = 2; opts = ""
        if ($2 ~ /^\[/) { while ($i !~ /\]$/) { opts = opts $i " "; i++ } opts = opts $i " "; i++ }
        if ($(i + 1) == want) { printf "deb %s%s %s main\n", opts, $i, suite; exit }
      }' "$f" > "$APTDIR/sources.list.d/backports.list"
    if [ -s "$APTDIR/sources.list.d/backports.list" ]; then found=1; break; fi
    rm -f "$APTDIR/sources.list.d/backports.list"
  fi
done
[ "$found" = 1 ] || die "no apt source for suite '$CODENAME' found in /etc/apt/sources.list{,.d}"

cat > "$APTDIR/apt.conf" <<EOF
Dir::State "$APTDIR";
Dir::State::Lists "$APTDIR/lists";
Dir::State::status "$APTDIR/status";
Dir::Cache "$APTDIR/cache";
Dir::Cache::archives "$APTDIR/cache/archives";
Dir::Etc::SourceList "/dev/null";
Dir::Etc::SourceParts "$APTDIR/sources.list.d";
Dir::Etc::Preferences "/dev/null";
Dir::Etc::PreferencesParts "/dev/null";
Acquire::Languages "none";
APT::Sandbox::User "root";
EOF
export APT_CONFIG="$APTDIR/apt.conf"
log "apt-get update ($SUITE, private state in $APTDIR)"
apt-get update -qq >&2

# 4. Download Mesa from backports, plus every dependency that the installed system does not satisfy.
fetched=()   # "name version" of the debs fetched so far
fetch() {    # downloads package $1 (candidate of the private state) into $DIR/debs
  local name=$1 ver
  ver=$(apt-cache show --no-all-versions "$name" 2>/dev/null | awk '/^Version:/ {print $2; exit}')
  [ -n "$ver" ] || return 1
  for e in "${fetched[@]}"; do [ "${e%% *}" = "$name" ] && return 0; done
  log "download $name $ver ($SUITE)"
  (cd "$DIR/debs" && apt-get download -qq "$name" >&2)
  fetched+=("$name $ver")
  resolve "$(ls "$DIR/debs/${name}_"*.deb)"
}
satisfied() {  # $1 = "name (op version)" or "name": true if installed or fetched version satisfies it
  local clause=$1 name op="" want="" have="" e
  name=${clause%% *}; name=${name%%:*}
  local re='\(([<>=]+)[[:space:]]*([^)]+)\)'
  if [[ "$clause" =~ $re ]]; then op=${BASH_REMATCH[1]}; want=${BASH_REMATCH[2]}; fi
  for e in "${fetched[@]}"; do [ "${e%% *}" = "$name" ] && have=${e#* }; done
  [ -n "$have" ] || have=$(installed_version "$name")
  [ -n "$have" ] || return 1
  [ -z "$op" ] && return 0
  case $op in '<<') op=lt ;; '<=') op=le ;; '=') op=eq ;; '>=') op=ge ;; '>>') op=gt ;; esac
  dpkg --compare-versions "$have" "$op" "$want"
}
resolve() {  # checks the Depends/Pre-Depends of deb file $1
  local deb=$1 deps clause alt ok
  local -a clauses alts
  deps=$(dpkg-deb -f "$deb" Pre-Depends Depends | sed -E 's/^[A-Za-z-]+: //' | tr '\n' ',')
  IFS=',' read -ra clauses <<< "$deps"
  for clause in "${clauses[@]}"; do
    clause=$(echo "$clause" | sed -E 's/^ +| +$//g'); [ -n "$clause" ] || continue
    ok=0
    IFS='|' read -ra alts <<< "$clause"
    for alt in "${alts[@]}"; do
      alt=$(echo "$alt" | sed -E 's/^ +| +$//g')
      if satisfied "$alt"; then ok=1; break; fi
    done
    [ "$ok" = 1 ] && continue
    alt=$(echo "${alts[0]}" | sed -E 's/^ +| +$//g')
    fetch "${alt%% *}" && satisfied "$alt" && continue
    die "dependency '$clause' of $(basename "$deb") is neither installed nor in $SUITE (apt-get install it)"
  done
}
fetch "$PKG" || die "$PKG not found in $SUITE"
mesaver=$(dpkg-deb -f "$(ls "$DIR/debs/${PKG}_"*.deb)" Version)
dpkg --compare-versions "$mesaver" ge "$MIN_MESA" || die "$PKG in $SUITE is $mesaver, need >= $MIN_MESA"

# 5. Unpack, write the ICD json with an absolute library path, and see whether LD_LIBRARY_PATH is needed.
for deb in "$DIR"/debs/*.deb; do dpkg-deb -x "$deb" "$DIR/root"; done
LVP_LIB=$(find "$DIR/root" -name libvulkan_lvp.so -print -quit)
[ -n "$LVP_LIB" ] || die "no libvulkan_lvp.so in $PKG $mesaver"
api=$(sed -nE 's/.*"api_version": *"([^"]+)".*/\1/p' "$(find "$DIR/root" -name 'lvp_icd*.json' -print -quit)")
cat > "$ICD" <<EOF
{
    "file_format_version": "1.0.0",
    "ICD": {
        "library_path": "$LVP_LIB",
        "api_version": "${api:-1.3.0}"
    }
}
EOF
LVP_LDPATH=""
if ldd -r "$LVP_LIB" 2>&1 | grep -qE 'not found|undefined symbol'; then
  LVP_LDPATH=$(dirname "$LVP_LIB")
  if LD_LIBRARY_PATH="$LVP_LDPATH" ldd -r "$LVP_LIB" 2>&1 | grep -E 'not found|undefined symbol' >&2; then
    die "$LVP_LIB has unresolved libraries or symbols even with the unpacked ones"
  fi
fi
rm -rf "$DIR/debs" "$APTDIR/cache"
printf 'LVP_LIB=%q\nLVP_LDPATH=%q\nMESA_VERSION=%q\n' "$LVP_LIB" "$LVP_LDPATH" "$mesaver" > "$STAMP"
log "Mesa $mesaver lavapipe ready in $DIR (fetched: ${fetched[*]})"
emit "$ICD" "$LVP_LDPATH"
