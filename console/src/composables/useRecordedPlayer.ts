// Recorded video through the public API (api/routers/playback.py): GET /channels/{id}/playback
// answers one fragmented MP4 stream of [start, end) with the codec in X-Codec and the recorded
// time of its first frame in X-Playback-Start. Gaps are cut out of the stream, so stream time is
// mapped back to recorded time with GET /playback/timeline of the same range (its spans' offsets).
// The body is read chunk by chunk into Media Source Extensions, held back while enough is
// buffered ahead: a day's range never sits in memory at once.
import { onBeforeUnmount, ref, type Ref } from 'vue'
import { errorText, fetchRaw, get, type Span, type Timeline } from '../api/client'
import { MseSink } from './mseSink'

export type PlayState = 'idle' | 'loading' | 'playing' | 'ended' | 'error'

/** Seconds of media to buffer ahead (times the speed), and queued pieces, before reading on. */
const AHEAD = 20
const BACKLOG = 40

export function useRecordedPlayer(video: Ref<HTMLVideoElement | null>) {
  const state = ref<PlayState>('idle')
  const error = ref('')
  const codec = ref('')
  const rate = ref(1)
  /** Recorded time (ms since the epoch) of the frame on screen. */
  const playhead = ref<number | null>(null)
  const gaps = ref(0)
  let spans: { start: number; end: number; offset: number }[] = []
  let firstFrame = 0
  let controller: AbortController | null = null
  let sink: MseSink | null = null
  let generation = 0

  function mapTime(ct: number): number {
    let span: (typeof spans)[number] | undefined
    for (const s of spans) {
      if (s.offset <= ct + 1e-3) span = s
      else break
    }
    if (!span) return firstFrame + ct * 1000
    return Math.min(span.end, span.start + (ct - span.offset) * 1000)
  }

  function onTime(): void {
    const v = video.value
    if (v && sink) playhead.value = mapTime(v.currentTime)
  }
  function onPlaying(): void {
    if (sink && state.value === 'loading') state.value = 'playing'
  }
  function onEnded(): void {
    if (sink) state.value = 'ended'
  }

  function teardown(): void {
    generation++
    controller?.abort()
    controller = null
    sink?.close()
    sink = null
    const v = video.value
    if (v) {
      v.removeEventListener('timeupdate', onTime)
      v.removeEventListener('playing', onPlaying)
      v.removeEventListener('ended', onEnded)
      v.removeAttribute('src')
      v.load()
    }
  }

  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms))

  async function play(channelId: string, start: Date, end: Date): Promise<void> {
    teardown()
    const v = video.value
    if (!v) return
    const gen = generation
    const ctl = new AbortController()
    controller = ctl
    state.value = 'loading'
    error.value = ''
    spans = []
    const range = { start: start.toISOString(), end: end.toISOString() }
    const path = `/channels/${encodeURIComponent(channelId)}`
    let res: Response
    try {
      res = await fetchRaw(`${path}/playback`, range, ctl.signal)
    } catch (e) {
      if (gen !== generation) return
      state.value = 'error'
      error.value = errorText(e)
      return
    }
    if (gen !== generation) return
    codec.value = res.headers.get('X-Codec') ?? ''
    gaps.value = Number(res.headers.get('X-Playback-Gaps') ?? 0)
    firstFrame = Date.parse(res.headers.get('X-Playback-Start') ?? '') || start.getTime()
    playhead.value = firstFrame
    const mime = `video/mp4; codecs="${codec.value || 'avc1.640028'}"`
    if (!('MediaSource' in window) || !MediaSource.isTypeSupported(mime)) {
      ctl.abort()
      state.value = 'error'
      error.value = `unsupported: ${codec.value}`
      return
    }
    // The map from stream time to recorded time (not audited; no media read twice).
    void get<Timeline>(`${path}/playback/timeline`, range, ctl.signal)
      .then((t) => {
        if (gen !== generation) return
        spans = t.spans.map((s: Span) => ({ start: Date.parse(s.start), end: Date.parse(s.end), offset: s.offset }))
        firstFrame = Date.parse(t.first_frame)
        onTime()
      })
      .catch(() => {
        // playback goes on; the playhead counts from X-Playback-Start
      })
    const s = new MseSink(v, mime, false, (m) => {
      if (gen !== generation) return
      state.value = 'error'
      error.value = m
      ctl.abort()
    })
    sink = s
    v.addEventListener('timeupdate', onTime)
    v.addEventListener('playing', onPlaying)
    v.addEventListener('ended', onEnded)
    // Loading a source resets playbackRate to defaultPlaybackRate: set both.
    v.defaultPlaybackRate = v.playbackRate = rate.value
    const reader = res.body!.getReader()
    try {
      for (;;) {
        while (gen === generation && (s.backlog > BACKLOG || s.ahead > AHEAD * Math.max(1, rate.value))) await wait(250)
        if (gen !== generation) return
        const { done, value } = await reader.read()
        if (done) break
        if (gen !== generation) return
        s.push(value)
      }
      s.finish()
    } catch (e) {
      if (gen === generation && !ctl.signal.aborted) {
        state.value = 'error'
        error.value = errorText(e)
      }
    }
  }

  function setRate(r: number): void {
    rate.value = r
    if (video.value) video.value.defaultPlaybackRate = video.value.playbackRate = r
  }

  function stop(): void {
    teardown()
    state.value = 'idle'
    playhead.value = null
  }

  onBeforeUnmount(teardown)
  return { state, error, codec, rate, playhead, gaps, play, setRate, stop }
}
