// One live view: the platform's WebSocket fMP4 stream into a <video> (see api/routers/live.py):
// a JSON {"type": "init", codec, mime} text message, the init segment as binary, then one binary
// fragment per frame; a new init may come again when the camera's stream restarts; {"type":
// "error"|"closed", message} before the server closes. Close codes 4401/4403/4404.
import { onBeforeUnmount, ref, type Ref } from 'vue'
import { get, liveUrl, type Channel } from '../api/client'
import { MseSink } from './mseSink'

export type LiveState = 'idle' | 'connecting' | 'playing' | 'offline' | 'error'

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
  let channel: string | null = null
  let ws: WebSocket | null = null
  let sink: MseSink | null = null
  let retry: ReturnType<typeof setTimeout> | undefined
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
    clearTimeout(retry)
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
      retry = setTimeout(() => connect(id), backoff)
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

  function connect(id: string): void {
    teardown()
    const v = video.value
    if (!v) return
    channel = id
    lastMessage = null
    state.value = 'connecting'
    detail.value = null
    v.addEventListener('playing', onPlaying)
    const socket = new WebSocket(liveUrl(id))
    socket.binaryType = 'arraybuffer'
    ws = socket
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
    channel = null
    teardown()
    state.value = 'idle'
    detail.value = null
  }

  onBeforeUnmount(stop)
  return { state, detail, codec, play, stop }
}
