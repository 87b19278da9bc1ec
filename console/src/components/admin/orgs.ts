// The organisations of the caller's area, for names in tables and the org pickers.
import { computed, ref } from 'vue'
import { getAll, type Org } from '../../api/client'

export interface OrgNode {
  value: string
  label: string
  children: OrgNode[]
}

export function useOrgs() {
  const orgs = ref<Org[]>([])
  const byId = computed(() => new Map(orgs.value.map((o) => [o.id, o])))

  /** The tree for ElTreeSelect: organisations whose parent is outside the area are roots. */
  const tree = computed<OrgNode[]>(() => {
    const nodes = new Map<string, OrgNode>(orgs.value.map((o) => [o.id, { value: o.id, label: o.name, children: [] }]))
    const roots: OrgNode[] = []
    for (const o of orgs.value) {
      const node = nodes.get(o.id)!
      const parent = o.parent ? nodes.get(o.parent) : undefined
      if (parent) parent.children.push(node)
      else roots.push(node)
    }
    return roots
  })

  async function load(): Promise<void> {
    orgs.value = await getAll<Org>('/orgs')
  }

  /** "甲镇" for a known code; the code itself otherwise (outside the area, or not loaded). */
  const name = (code: string | null | undefined): string => (code ? (byId.value.get(code)?.name ?? code) : '—')

  return { orgs, tree, load, name }
}

export function formatTime(iso: string | null | undefined, locale: string): string {
  if (!iso) return '—'
  const d = new Date(iso)
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(locale, { hour12: false })
}

/** Lets the browser save a blob as a file. */
export function saveBlob(blob: Blob, name: string): void {
  const a = document.createElement('a')
  a.href = URL.createObjectURL(blob)
  a.download = name
  document.body.appendChild(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000)
}
