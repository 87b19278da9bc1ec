// Following one export job (a download from a GB/T 28181 device: POST
// /channels/{id}/device-download answers 202 with the export running): GET /exports/{id} about
// once a second until it is done, partial or failed; then the file is fetched with the caller's
// token (as a platform export's is) for a "save" link. Cancel (POST /exports/{id}/cancel) keeps
// what arrived as partial. `stop` ends the following (the dialog closed: the job runs on, listed
// under 导出记录); unmounting the page stops it too.
import { onBeforeUnmount, ref } from 'vue'
import { ApiError, cancelExport, errorText, fetchExportFile, getExport, type ExportView } from '../api/client'

const POLL_MS = 1000

/** A progress (0 … 1) in percent: a tenth's precision under 10 %, so a slow start shows. */
export function percentText(progress: number): string {
  const p = Math.max(0, Math.min(1, progress)) * 100
  return p > 0 && p < 10 ? p.toFixed(1) : String(Math.round(p))
}

export function useExportJob() {
  const view = ref<ExportView | null>(null)
  /** The finished file, as an object URL for a download link. */
  const file = ref<{ url: string; name: string } | null>(null)
  /** Following, cancelling or fetching the file failed: the platform's words. */
  const error = ref('')
  const cancelling = ref(false)
  let timer: ReturnType<typeof setTimeout> | undefined
  let generation = 0

  function stop(): void {
    generation++
    clearTimeout(timer)
    timer = undefined
    cancelling.value = false
  }

  function clear(): void {
    stop()
    if (file.value) URL.revokeObjectURL(file.value.url)
    file.value = null
    view.value = null
    error.value = ''
  }

  /** Take over a job just started (or any export): follow it until it is finished. */
  function follow(v: ExportView): void {
    clear()
    void settle(v, generation)
  }

  async function settle(v: ExportView, gen: number): Promise<void> {
    if (gen !== generation) return
    view.value = v
    if (v.status === 'running') {
      clearTimeout(timer)
      timer = setTimeout(() => void poll(gen), POLL_MS)
      return
    }
    if ((v.status === 'done' || v.status === 'partial') && v.url && !file.value) {
      try {
        const { blob, name } = await fetchExportFile(v)
        if (gen !== generation) return
        file.value = { url: URL.createObjectURL(blob), name }
      } catch (e) {
        if (gen === generation) error.value = errorText(e)
      }
    }
  }

  async function poll(gen: number): Promise<void> {
    const id = view.value?.id
    if (gen !== generation || id === undefined) return
    try {
      const v = await getExport(id)
      if (gen !== generation) return
      error.value = ''
      await settle(v, gen)
    } catch (e) {
      if (gen !== generation) return
      error.value = errorText(e)
      // Gone or refused: nothing more to follow; otherwise (the network) try again.
      if (e instanceof ApiError && (e.status === 403 || e.status === 404)) return
      timer = setTimeout(() => void poll(gen), POLL_MS * 2)
    }
  }

  async function cancel(): Promise<void> {
    const v = view.value
    if (!v || v.status !== 'running') return
    const gen = generation
    cancelling.value = true
    try {
      const after = await cancelExport(v.id)
      if (gen !== generation) return
      await settle(after, gen)
    } catch (e) {
      if (gen === generation) error.value = errorText(e)
    } finally {
      if (gen === generation) cancelling.value = false
    }
  }

  onBeforeUnmount(clear)
  return { view, file, error, cancelling, follow, cancel, stop, clear }
}
