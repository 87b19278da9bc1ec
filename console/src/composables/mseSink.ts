// Appends fragmented MP4 pieces to a <video> through Media Source Extensions, in order, and keeps
// a live view at the newest data (a port of web/player/player.js's MseSink).

/** Jump forward when playback falls this far behind the newest buffered frame (s). */
const MAX_LAG = 1.0
/** Where to land after a jump, before the edge (s). */
const LANDING = 0.2
/** Trim the buffer once it holds this much played media (s), keeping KEEP behind the playhead. */
const TRIM_AT = 20
const KEEP = 5
/** Pieces waiting while the SourceBuffer is busy; past this the sink reports itself too slow. */
const MAX_QUEUE = 300
/** Recorded playback: trim played media past this (s), keeping PLAYED_KEEP behind the playhead. */
const PLAYED_TRIM_AT = 60
const PLAYED_KEEP = 10

export class MseSink {
  private readonly queue: BufferSource[] = []
  private sb: SourceBuffer | null = null
  private readonly ms = new MediaSource()
  private readonly url: string
  private closed = false
  private finishing = false

  constructor(
    private readonly video: HTMLVideoElement,
    private readonly mime: string,
    private readonly live: boolean,
    private readonly onError: (message: string) => void,
  ) {
    this.url = URL.createObjectURL(this.ms)
    this.ms.addEventListener('sourceopen', () => this.open(), { once: true })
    video.src = this.url
  }

  private open(): void {
    if (this.closed) return
    URL.revokeObjectURL(this.url)
    try {
      this.sb = this.ms.addSourceBuffer(this.mime)
    } catch (e) {
      this.onError(String((e as Error).message ?? e))
      return
    }
    this.sb.addEventListener('updateend', () => this.pump())
    this.sb.addEventListener('error', () => this.onError('SourceBuffer error'))
    this.pump()
  }

  push(chunk: BufferSource): void {
    if (this.closed) return
    if (this.queue.length >= MAX_QUEUE) {
      this.onError('the browser cannot keep up with the stream')
      return
    }
    this.queue.push(chunk)
    this.pump()
  }

  private pump(): void {
    const sb = this.sb
    if (this.closed || !sb || sb.updating) return
    if (this.trim()) return // updateend pumps again
    const next = this.queue.shift()
    if (!next) {
      if (this.finishing && this.ms.readyState === 'open') {
        try {
          this.ms.endOfStream()
        } catch {
          // closed meanwhile
        }
      }
      return
    }
    try {
      sb.appendBuffer(next)
    } catch (e) {
      this.onError(String((e as Error).message ?? e))
      return
    }
    if (this.video.paused) this.video.play().catch(() => {})
  }

  /** Keeps a live view at the edge and the buffer short; true when a removal is under way. */
  private trim(): boolean {
    const v = this.video
    const b = v.buffered
    if (!b.length || !this.sb) return false
    const start = b.start(0)
    const end = b.end(b.length - 1)
    if (v.currentTime < start) v.currentTime = start
    if (this.live && end - v.currentTime > MAX_LAG) v.currentTime = Math.max(start, end - LANDING)
    if (this.live && v.currentTime - start > TRIM_AT) {
      this.sb.remove(start, v.currentTime - KEEP)
      return true
    }
    if (!this.live && v.currentTime - start > PLAYED_TRIM_AT) {
      this.sb.remove(start, v.currentTime - PLAYED_KEEP)
      return true
    }
    return false
  }

  /** Pieces not yet appended. */
  get backlog(): number {
    return this.queue.length
  }

  /** Seconds of media buffered ahead of the playhead. */
  get ahead(): number {
    const b = this.video.buffered
    return b.length ? b.end(b.length - 1) - this.video.currentTime : 0
  }

  get isClosed(): boolean {
    return this.closed
  }

  /** The stream is complete: end it once everything queued is appended (the video then ends). */
  finish(): void {
    this.finishing = true
    this.pump()
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.queue.length = 0
    try {
      if (this.ms.readyState === 'open') this.ms.endOfStream()
    } catch {
      // already closed
    }
  }
}
