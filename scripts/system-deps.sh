#!/usr/bin/env bash
# Installs the system packages the tests need (Debian/Ubuntu), when they are missing:
# PostgreSQL's server binaries (the suite also runs on a throw-away cluster), ffmpeg/ffprobe
# (produce and verify media) and GStreamer's RTSP server with the system Python's bindings
# (a real RTSP peer), SIPp (a real SIP peer), Chromium for the browser tests, and Node.js with npm to build the web console.
# As root it installs them with apt-get; otherwise it says what to install and fails.
# `system-deps.sh node` checks only Node.js and npm (what `make install` needs for the console).
set -euo pipefail

need=()
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ "${1:-all}" = node ]; then
  :
else
have_pg() { command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }
have_gst_rtsp() {
  [ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0'); gi.require_version('GstRtsp', '1.0')" >/dev/null 2>&1 \
    && command -v gst-inspect-1.0 >/dev/null 2>&1 \
    && gst-inspect-1.0 x264enc >/dev/null 2>&1 && gst-inspect-1.0 x265enc >/dev/null 2>&1
}
have_pg || need+=(postgresql)
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
# ip(8): the ONVIF discovery test builds a private segment out of network namespaces.
command -v ip >/dev/null 2>&1 || need+=(iproute2)
[ -x /usr/bin/chromium ] || need+=(chromium)
# SIPp: a SIP peer nobody here wrote, acting as a GB/T 28181 camera in the tests.
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
# A CJK font, so that screenshots of the (Chinese) console are readable.
fc-list 2>/dev/null | grep -qiE "wqy|noto sans cjk|droid sans fallback" || need+=(fonts-wqy-microhei fontconfig)
have_gst_rtsp || need+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-tools
                        gstreamer1.0-plugins-base gstreamer1.0-plugins-good
                        gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad)
fi

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Missing system packages: ${need[*]}. Install them (e.g. sudo apt-get install ${need[*]}) and run again." >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "Installed: ${need[*]}"
