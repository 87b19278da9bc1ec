// Recordings kept on a GB/T 28181 device (api/routers/device_records.py): POST
// /channels/{id}/device-playback {start, end} INVITEs the device for the range and answers
// {session, url}; url is a single-use ws:// stream in the live protocol (a JSON init message, the
// init segment, then one binary fMP4 fragment per frame; {"type": "closed"} at the end of the
// file). Pause, resume and speed go to the device (MANSRTSP: POST /device-playback/{session}/
// control); DELETE /device-playback/{session} ends it (BYE) when the viewer stops or leaves.
import { onBeforeUnmount, ref, type Ref } from 'vue'
import {
  ApiError,
  controlDevicePlayback,
  endDevicePlayback,
  startDevicePlayback,
  type DevicePlaybackControl,
  type DevicePlaybackSession,
} from '../api/client'
import { MseSink } from './mseSink'
import type { PlayState } from './useRecordedPlayer'

/** What went wrong, for the page to frame: `text` is the server's (or the browser's) words. */
export interface DeviceFailure {
  /** start: the device would not play the range; control: pause/speed was refused; stream: the
   * stream broke; unsupported: the browser cannot decode it; noUrl: no direct stream offered. */
  kind: 'start' | 'control' | 'stream' | 'unsupported' | 'noUrl'
  text: string
}

export function useDevicePlayback(video: Ref<HTMLVideoElement | null>) {
  const state = ref<PlayState>('idle')
  const failure = ref<DeviceFailure | null>(null)
  const codec = ref('')
  const rate = ref(1)
  const paused = ref(false)
  /** Recorded time (ms since the epoch) of the frame on screen. */
  const playhead = ref<number | null>(null)
  /** The device's session key while one is open. */
  const session = ref<string | null>(null)
  let ws: WebSocket | null = null
  let sink: MseSink | null = null
  let from = 0
  /** The media time of the range's first frame (the first buffered instant). */
  let base: number | null = null
  let generation = 0

  function onTime(): void {
    const v = video.value
    if (!v || !sink) return
    if (base === null && v.buffered.length) base = v.buffered.start(0)
    if (base !== null) playhead.value = from + Math.max(0, v.currentTime - base) * 1000
  }
  function onPlaying(): void {
    if (sink && (state.value === 'loading' || state.value === 'playing')) state.value = 'playing'
  }
  function onEnded(): void {
    if (sink) state.value = 'ended'
  }
  /** The sink starts a paused video when data comes: frames still in flight after a pause. */
  function onPlay(): void {
    if (paused.value) video.value?.pause()
  }

  /** Close the socket and the sink; end the device's session (BYE) when one is open. */
  function teardown(): void {
    generation++
    if (ws) {
      ws.onmessage = ws.onclose = ws.onerror = null
      ws.close()
      ws = null
    }
    sink?.close()
    sink = null
    const key = session.value
    session.value = null
    if (key) void endDevicePlayback(key).catch(() => {}) // 404: it ended by itself
    const v = video.value
    if (v) {
      v.removeEventListener('timeupdate', onTime)
      v.removeEventListener('playing', onPlaying)
      v.removeEventListener('ended', onEnded)
      v.removeEventListener('play', onPlay)
      v.removeAttribute('src')
      v.load()
    }
  }

  function fail(kind: DeviceFailure['kind'], text: string): void {
    teardown()
    state.value = 'error'
    failure.value = { kind, text }
  }

  async function play(channelId: string, start: number, end: number): Promise<void> {
    teardown()
    const v = video.value
    if (!v) return
    const gen = generation
    state.value = 'loading'
    failure.value = null
    paused.value = false
    rate.value = 1
    from = start
    base = null
    playhead.value = start
    let answer: DevicePlaybackSession
    try {
      answer = await startDevicePlayback(channelId, start, end)
    } catch (e) {
      if (gen !== generation) return
      // 422 stream_failed / device_error: which step failed, in the platform's words.
      state.value = 'error'
      failure.value = { kind: 'start', text: e instanceof ApiError ? e.message : String(e) }
      playhead.value = null
      return
    }
    if (gen !== generation) {
      void endDevicePlayback(answer.session).catch(() => {})
      return
    }
    session.value = answer.session
    if (!answer.url) {
      fail('noUrl', '')
      return
    }
    open(v, answer.url, gen)
  }

  function open(v: HTMLVideoElement, address: string, gen: number): void {
    let socket: WebSocket
    try {
      socket = new WebSocket(address)
    } catch (e) {
      fail('stream', String((e as Error).message ?? e))
      return
    }
    socket.binaryType = 'arraybuffer'
    ws = socket
    let lastMessage = ''
    v.addEventListener('timeupdate', onTime)
    v.addEventListener('playing', onPlaying)
    v.addEventListener('ended', onEnded)
    v.addEventListener('play', onPlay)
    socket.onmessage = (ev: MessageEvent) => {
      if (gen !== generation) return
      if (typeof ev.data === 'string') {
        const msg = JSON.parse(ev.data) as { type: string; codec?: string; mime?: string; message?: string }
        if (msg.type === 'init' && msg.mime) {
          if (!('MediaSource' in window) || !MediaSource.isTypeSupported(msg.mime)) {
            fail('unsupported', msg.codec ?? msg.mime)
            return
          }
          if (sink) return // the device's stream restarted: keep the one timeline
          codec.value = msg.codec ?? ''
          sink = new MseSink(v, msg.mime, false, (m) => {
            if (gen === generation) fail('stream', m)
          })
          v.defaultPlaybackRate = v.playbackRate = rate.value
        } else {
          lastMessage = msg.message ?? msg.type
        }
      } else if (sink) {
        sink.push(ev.data as ArrayBuffer)
      }
    }
    socket.onclose = (ev: CloseEvent) => {
      if (gen !== generation || ws !== socket) return
      ws = null
      if (sink && (ev.code === 1000 || ev.code === 1011 || ev.code === 1005)) {
        // The end of the range (MediaStatus 121) or of the session: play out what is buffered.
        session.value = null
        sink.finish()
        if (state.value === 'loading') state.value = 'ended'
        return
      }
      fail('stream', lastMessage || `WebSocket ${ev.code}`)
    }
  }

  async function control(body: DevicePlaybackControl): Promise<boolean> {
    const key = session.value
    if (!key) return false
    try {
      await controlDevicePlayback(key, body)
      return true
    } catch (e) {
      failure.value = { kind: 'control', text: e instanceof ApiError ? e.message : String(e) }
      return false
    }
  }

  /** The device sends faster (MANSRTSP Scale); the browser plays its timestamps as fast. */
  async function setRate(r: number): Promise<void> {
    const before = rate.value
    rate.value = r
    if (session.value && !(await control({ action: 'speed', value: r }))) {
      rate.value = before
      return
    }
    const v = video.value
    if (v) v.defaultPlaybackRate = v.playbackRate = rate.value
  }

  async function togglePause(): Promise<void> {
    const v = video.value
    if (!paused.value) {
      if (await control({ action: 'pause' })) {
        paused.value = true
        v?.pause()
      }
    } else if (await control({ action: 'resume' })) {
      paused.value = false
      void v?.play().catch(() => {})
    }
  }

  function stop(): void {
    teardown()
    state.value = 'idle'
    failure.value = null
    playhead.value = null
    paused.value = false
  }

  onBeforeUnmount(stop)
  return { state, failure, codec, rate, paused, playhead, session, play, setRate, togglePause, stop }
}
