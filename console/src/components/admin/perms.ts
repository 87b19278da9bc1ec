// What the logged-in user may do (GET /auth/me), for hiding what it may not. Only a courtesy:
// the API checks every call itself, and a refused one shows its 403.
import { defineStore } from 'pinia'
import { ref, watch } from 'vue'
import { getMe } from '../../api/client'
import { useSession } from '../../stores/session'

export const useAdminPerms = defineStore('admin-perms', () => {
  const session = useSession()
  const permissions = ref<Set<string>>(new Set())
  const loaded = ref(false)

  async function load(): Promise<void> {
    if (!session.loggedIn) return
    try {
      const me = await getMe()
      permissions.value = new Set(me.permissions)
    } catch {
      permissions.value = new Set() // show nothing extra; pages still report the API's answer
    }
    loaded.value = true
  }

  // Another login (or the end of this one) means other permissions.
  watch(
    () => session.token,
    () => {
      permissions.value = new Set()
      loaded.value = false
      void load()
    },
  )

  const has = (p: string): boolean => permissions.value.has(p)
  return { permissions, loaded, load, has }
})
