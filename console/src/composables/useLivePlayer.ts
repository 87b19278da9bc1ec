// One live view: a WebSocket fMP4 stream into a <video> (see api/routers/live.py): a JSON
// {"type": "init", codec, mime} text message, the init segment as binary, then one binary
// fragment per frame; a new init may come again when the camera's stream restarts; {"type":
// "error"|"closed", message} before the server closes. Close codes 4401/4403/4404.
//
// The stream comes straight from the media worker that runs the channel, with a single-use
// ticket the platform issues (POST /channels/{id}/live/ticket: permission, area and audit are
// checked there). Where the worker cannot be reached (an HTTPS proxy in front, a firewall), the
// platform's relayed WebSocket carries the same protocol.
import { onBeforeUnmount, ref, type Ref } from 'vue'
import { ApiError, get, liveUrl, request, type Channel } from '../api/client'
import { MseSink } from './mseSink'

interface LiveTicket {
  url: string | null
  expires_at: string | null
  relay_url: string
}

// Once a worker could not be reached from this page, later views go by the relay at once.
let directUnreachable = false

// requesting: the ticket is being asked for (a GB/T 28181 channel's device is INVITEd meanwhile,
// which may take seconds); connecting: the stream is being opened.
export type LiveState = 'idle' | 'requesting' | 'connecting' | 'playing' | 'offline' | 'error'

/** What the tile says; `key` is an i18n key under wall.reason, else `text` is shown as is. */
export interface LiveDetail {
  key?: string
  args?: Record<string, string>
  text?: string
}

const RETRY_MIN = 2000
const RETRY_MAX = 15000
const NO_INIT_MS = 3000

export function useLivePlayer(video: Ref<HTMLVideoElement | null>, onUnauthorized: () => void) {
  const state = ref<LiveState>('idle')
  const detail = ref<LiveDetail | null>(null)
  const codec = ref('')
  /** The platform could not get the channel's video (422 stream_failed: which step failed, in
   * the server's words); the tile offers to try again. */
  const failure = ref<string | null>(null)
  let channel: string | null = null
  let ws: WebSocket | null = null
  let sink: MseSink | null = null
  let retryTimer: ReturnType<typeof setTimeout> | undefined
  let backoff = RETRY_MIN
  let lastMessage: string | null = null
  // A camera that is offline keeps the socket open without a frame (it plays when it comes back):
  // after a while with no init, the tile asks the channel's status and says why.
  let watchdog: ReturnType<typeof setTimeout> | undefined

  function onPlaying(): void {
    if (ws && sink) {
      state.value = 'playing'
      detail.value = null
      backoff = RETRY_MIN
    }
  }

  function teardown(): void {
    clearTimeout(retryTimer)
    clearTimeout(watchdog)
    if (ws) {
      ws.onmessage = ws.onclose = ws.onerror = null
      ws.close()
      ws = null
    }
    sink?.close()
    sink = null
    const v = video.value
    if (v) {
      v.removeEventListener('playing', onPlaying)
      v.removeAttribute('src')
      v.load()
    }
  }

  function fail(s: LiveState, d: LiveDetail, again: boolean): void {
    teardown()
    state.value = s
    detail.value = d
    if (again && channel) {
      const id = channel
      retryTimer = setTimeout(() => connect(id), backoff)
      backoff = Math.min(RETRY_MAX, backoff * 2)
    }
  }

  async function offlineReason(id: string): Promise<LiveDetail> {
    try {
      const c = await get<Channel>(`/channels/${encodeURIComponent(id)}`)
      if (c.status_reason) return { text: c.status_reason }
    } catch {
      // the tile says what the stream said
    }
    return lastMessage ? { text: lastMessage } : { key: 'noSource' }
  }

  let attempt = 0

  /** The worker's ticketed address, or the relay's; null when the caller may not watch. */
  async function target(id: string, mine: number): Promise<{ url: string; direct: boolean } | null> {
    if (!directUnreachable) {
      try {
        const t = await request<LiveTicket>('POST', `/channels/${encodeURIComponent(id)}/live/ticket`)
        if (t.url) return { url: t.url, direct: true }
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) return null // the session handler acts
        if (e instanceof ApiError && e.status === 403) {
          if (attempt === mine && channel === id) fail('error', { key: 'forbidden' }, false)
          return null
        }
        if (e instanceof ApiError && e.status === 422) {
          // The device could not be made to stream (offline, INVITE refused, no video): the
          // relay would only INVITE it again. Say why; trying again is the viewer's choice.
          if (attempt === mine && channel === id) {
            fail('error', { key: 'streamFailed' }, false)
            failure.value = e.message
          }
          return null
        }
        // 404 and the rest: the relay says why in its own words
      }
    }
    return { url: liveUrl(id), direct: false }
  }

  function connect(id: string): void {
    teardown()
    const v = video.value
    if (!v) return
    channel = id
    lastMessage = null
    failure.value = null
    state.value = directUnreachable ? 'connecting' : 'requesting'
    detail.value = null
    // One request at a time: a slow ticket (a device being INVITEd) is not asked for again; an
    // answer for an earlier attempt (the tile changed or stopped meanwhile) is dropped.
    const mine = ++attempt
    void target(id, mine).then((t) => {
      if (t && mine === attempt && channel === id) {
        state.value = 'connecting'
        open(id, v, t.url, t.direct)
      }
    })
  }

  function open(id: string, v: HTMLVideoElement, address: string, direct: boolean): void {
    v.addEventListener('playing', onPlaying)
    let socket: WebSocket
    try {
      socket = new WebSocket(address)
    } catch {
      // A malformed address (a misconfigured public host): the relay instead.
      if (!direct) throw new Error(`cannot open ${address}`)
      directUnreachable = true
      socket = new WebSocket(liveUrl(id))
      direct = false
    }
    socket.binaryType = 'arraybuffer'
    ws = socket
    let opened = false
    socket.onopen = () => {
      opened = true
    }
    watchdog = setTimeout(async () => {
      if (ws !== socket || sink) return
      try {
        const c = await get<Channel>(`/channels/${encodeURIComponent(id)}`)
        if (ws === socket && !sink && c.status !== 'online') {
          state.value = 'offline'
          detail.value = c.status_reason ? { text: c.status_reason } : { key: 'noSource' }
        }
      } catch {
        // the socket says the rest
      }
    }, NO_INIT_MS)
    socket.onmessage = (ev: MessageEvent) => {
      if (typeof ev.data === 'string') {
        const msg = JSON.parse(ev.data) as { type: string; codec?: string; mime?: string; message?: string }
        if (msg.type === 'init' && msg.mime) {
          if (!('MediaSource' in window) || !MediaSource.isTypeSupported(msg.mime)) {
            fail('error', { key: 'unsupported', args: { codec: msg.codec ?? msg.mime } }, false)
            return
          }
          sink?.close()
          clearTimeout(watchdog)
          if (state.value === 'offline') {
            state.value = 'connecting'
            detail.value = null
          }
          codec.value = msg.codec ?? ''
          sink = new MseSink(v, msg.mime, true, (m) => fail('error', { text: m }, true))
        } else {
          lastMessage = msg.message ?? msg.type
        }
      } else if (sink) {
        sink.push(ev.data as ArrayBuffer)
      }
    }
    socket.onclose = (ev: CloseEvent) => {
      if (ws !== socket) return
      if (direct && !opened) {
        // The worker's address is not reachable from here (or the ticket was refused): the
        // relay, now and for the rest of this page's life.
        directUnreachable = true
        teardown()
        open(id, v, liveUrl(id), false)
        return
      }
      if (ev.code === 4401) {
        fail('error', { key: 'lost' }, false)
        onUnauthorized()
      } else if (ev.code === 4403) {
        fail('error', { key: 'forbidden' }, false)
      } else if (ev.code === 4404 || ev.code === 1011) {
        // No live source (camera offline) or the stream ended: say why, and try again.
        state.value = 'offline'
        teardown()
        void offlineReason(id).then((d) => {
          if (channel === id && state.value === 'offline') fail('offline', d, true)
        })
      } else {
        fail('error', { key: 'lost' }, true)
      }
    }
  }

  function play(id: string): void {
    backoff = RETRY_MIN
    connect(id)
  }

  function stop(): void {
    attempt++
    channel = null
    teardown()
    state.value = 'idle'
    detail.value = null
    failure.value = null
  }

  /** Try again after a failure (the tile's retry button). */
  function retry(): void {
    if (channel) play(channel)
  }

  onBeforeUnmount(stop)
  return { state, detail, codec, failure, play, stop, retry }
}
