import { createApp, watch } from 'vue'
import { createPinia } from 'pinia'
// Element Plus: only the components used are imported (in the views); their styles here.
import 'element-plus/theme-chalk/dark/css-vars.css'
import 'element-plus/es/components/base/style/css'
import 'element-plus/es/components/alert/style/css'
import 'element-plus/es/components/button/style/css'
import 'element-plus/es/components/form/style/css'
import 'element-plus/es/components/form-item/style/css'
import 'element-plus/es/components/input/style/css'
import 'element-plus/es/components/tree/style/css'
import './style.css'
import App from './App.vue'
import { onUnauthorized } from './api/client'
import { applyDocument, i18n } from './i18n'
import { router } from './router'
import { useSession } from './stores/session'

const app = createApp(App)
const pinia = createPinia()
app.use(pinia).use(i18n).use(router)

const session = useSession(pinia)
// Any 401 once logged in (token expired or revoked): back to the login page.
onUnauthorized(() => session.end('expired'))
watch(
  () => session.loggedIn,
  (now) => {
    if (!now && router.currentRoute.value.name !== 'login') void router.replace({ name: 'login' })
  },
)
watch(() => i18n.global.locale.value, applyDocument)
applyDocument()
app.mount('#app')
