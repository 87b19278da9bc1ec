import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import type { Channel } from '../api/client'

export const LAYOUTS = [1, 4, 9, 16] as const
export type Layout = (typeof LAYOUTS)[number]
export type TileChannel = Pick<Channel, 'id' | 'name' | 'status' | 'status_reason'>

const KEY = 'xl-wall'
const MAX = 16

export const useWall = defineStore('wall', () => {
  const saved = (() => {
    try {
      return JSON.parse(sessionStorage.getItem(KEY) ?? 'null') as { layout: Layout; tiles: (TileChannel | null)[] } | null
    } catch {
      return null
    }
  })()
  const layout = ref<Layout>(saved && LAYOUTS.includes(saved.layout) ? saved.layout : 4)
  const tiles = ref<(TileChannel | null)[]>(
    Array.from({ length: MAX }, (_, i) => saved?.tiles?.[i] ?? null),
  )
  const selected = ref(0)
  const visible = computed(() => tiles.value.slice(0, layout.value))

  function persist(): void {
    sessionStorage.setItem(KEY, JSON.stringify({ layout: layout.value, tiles: tiles.value }))
  }

  function setLayout(n: Layout): void {
    layout.value = n
    if (selected.value >= n) selected.value = 0
    persist()
  }

  function put(index: number, channel: TileChannel): void {
    const slim = { id: channel.id, name: channel.name, status: channel.status, status_reason: channel.status_reason }
    tiles.value[index] = slim
    selected.value = index
    persist()
  }

  /** Click-to-add: the selected tile when empty, else the first empty one, else the selected. */
  function add(channel: TileChannel): number {
    const n = layout.value
    let index = selected.value < n && !tiles.value[selected.value] ? selected.value : -1
    if (index < 0) index = tiles.value.slice(0, n).findIndex((t) => !t)
    if (index < 0) index = selected.value < n ? selected.value : 0
    put(index, channel)
    // Next click fills the next tile.
    const next = tiles.value.slice(0, n).findIndex((t) => !t)
    if (next >= 0) selected.value = next
    return index
  }

  function remove(index: number): void {
    tiles.value[index] = null
    persist()
  }

  function clear(): void {
    tiles.value = tiles.value.map(() => null)
    selected.value = 0
    persist()
  }

  function reset(): void {
    clear()
    layout.value = 4
    sessionStorage.removeItem(KEY)
  }

  return { layout, tiles, selected, visible, setLayout, put, add, remove, clear, reset }
})
