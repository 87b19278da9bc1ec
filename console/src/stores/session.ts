import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { request, setToken, type LoginResult, type UserView } from '../api/client'

// Shared with the embeddable player (/player/), which keeps its token under the same key.
const TOKEN = 'xl-token'
const USER = 'xl-user'
const EXPIRES = 'xl-expires'

function load<T>(key: string): T | null {
  try {
    const raw = sessionStorage.getItem(key)
    return raw ? (JSON.parse(raw) as T) : null
  } catch {
    return null
  }
}

export const useSession = defineStore('session', () => {
  const token = ref<string | null>(sessionStorage.getItem(TOKEN))
  const user = ref<UserView | null>(load<UserView>(USER))
  const expiresAt = ref<string | null>(load<string>(EXPIRES))
  /** Why the last session ended ('expired' | 'logout'), shown by the login page. */
  const ended = ref<string | null>(null)
  let timer: ReturnType<typeof setTimeout> | undefined

  const loggedIn = computed(() => token.value !== null && !isExpired())
  setToken(token.value)
  schedule()

  function isExpired(): boolean {
    return expiresAt.value !== null && Date.parse(expiresAt.value) <= Date.now()
  }

  function schedule(): void {
    clearTimeout(timer)
    if (!expiresAt.value || !token.value) return
    const ms = Date.parse(expiresAt.value) - Date.now()
    // setTimeout holds at most ~24.8 days; tokens live hours.
    if (ms < 2 ** 31 - 1) timer = setTimeout(() => end('expired'), Math.max(0, ms))
  }

  async function login(username: string, password: string): Promise<void> {
    const r = await request<LoginResult>('POST', '/auth/login', {
      body: { username, password },
      anonymous: true,
    })
    token.value = r.access_token
    user.value = r.user
    expiresAt.value = r.expires_at
    ended.value = null
    sessionStorage.setItem(TOKEN, r.access_token)
    sessionStorage.setItem(USER, JSON.stringify(r.user))
    sessionStorage.setItem(EXPIRES, JSON.stringify(r.expires_at))
    setToken(r.access_token)
    schedule()
  }

  function end(reason: 'expired' | 'logout'): void {
    clearTimeout(timer)
    token.value = null
    user.value = null
    expiresAt.value = null
    ended.value = reason
    for (const k of [TOKEN, USER, EXPIRES]) sessionStorage.removeItem(k)
    setToken(null)
  }

  async function logout(): Promise<void> {
    try {
      if (token.value) await request('POST', '/auth/logout')
    } catch {
      // the session ends here either way
    }
    end('logout')
  }

  return { token, user, expiresAt, ended, loggedIn, login, logout, end }
})
