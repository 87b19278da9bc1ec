import { createRouter, createWebHashHistory } from 'vue-router'
import { useSession } from './stores/session'

// Hash history: the console is plain static files under /console/.
export const router = createRouter({
  history: createWebHashHistory(),
  routes: [
    { path: '/login', name: 'login', component: () => import('./views/LoginView.vue'), meta: { public: true } },
    {
      path: '/',
      component: () => import('./views/ConsoleLayout.vue'),
      children: [
        { path: '', redirect: { name: 'live' } },
        { path: 'live', name: 'live', component: () => import('./views/LiveWall.vue') },
        { path: 'playback', name: 'playback', component: () => import('./views/PlaybackView.vue') },
        { path: 'status', name: 'status', component: () => import('./views/StatusView.vue') },
        // The map has its own panel (coverage per area) beside it.
        { path: 'map', name: 'map', component: () => import('./views/MapView.vue'), meta: { panel: false } },
        // Administration: no channel panel beside them (meta.admin); the API checks permissions.
        { path: 'devices', name: 'devices', component: () => import('./views/DevicesView.vue'), meta: { admin: true } },
        { path: 'users', name: 'users', component: () => import('./views/UsersView.vue'), meta: { admin: true } },
        { path: 'audit', name: 'audit', component: () => import('./views/AuditView.vue'), meta: { admin: true } },
        // Exports and device downloads (video.export): a wide table, no channel panel.
        { path: 'exports', name: 'exports', component: () => import('./views/ExportsView.vue'), meta: { admin: true } },
      ],
    },
    { path: '/:rest(.*)*', redirect: { name: 'live' } },
  ],
})

router.beforeEach((to) => {
  const session = useSession()
  if (!to.meta.public && !session.loggedIn) {
    return { name: 'login', query: to.fullPath !== '/live' && to.fullPath !== '/' ? { next: to.fullPath } : {} }
  }
  if (to.name === 'login' && session.loggedIn) return { name: 'live' }
  return true
})
