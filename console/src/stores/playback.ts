import { defineStore } from 'pinia'
import { ref } from 'vue'
import type { TileChannel } from './wall'

const KEY = 'xl-playback'

/** The channel the playback page shows (chosen in the channel panel: click or drag). */
export const usePlayback = defineStore('playback', () => {
  const channel = ref<TileChannel | null>(
    (() => {
      try {
        return JSON.parse(sessionStorage.getItem(KEY) ?? 'null') as TileChannel | null
      } catch {
        return null
      }
    })(),
  )

  function choose(c: TileChannel): void {
    channel.value = { id: c.id, name: c.name, status: c.status, status_reason: c.status_reason }
    sessionStorage.setItem(KEY, JSON.stringify(channel.value))
  }

  function reset(): void {
    channel.value = null
    sessionStorage.removeItem(KEY)
  }

  return { channel, choose, reset }
})
