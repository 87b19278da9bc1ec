import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// The build goes into the Python package, which serves it at /console/ (see api/app.py).
export default defineConfig({
  base: './',
  plugins: [vue()],
  define: {
    __VUE_OPTIONS_API__: 'true',
    __VUE_PROD_DEVTOOLS__: 'false',
    __VUE_PROD_HYDRATION_MISMATCH_DETAILS__: 'false',
    __VUE_I18N_FULL_INSTALL__: 'false',
    __VUE_I18N_LEGACY_API__: 'false',
    __INTLIFY_PROD_DEVTOOLS__: 'false',
  },
  build: {
    outDir: '../src/xueliang/web/console', // relative to this folder
    emptyOutDir: true,
    reportCompressedSize: true,
    chunkSizeWarningLimit: 600,
  },
  server: {
    // `npm run dev` against a platform on the default port.
    proxy: { '/api': { target: 'http://127.0.0.1:8080', ws: true } },
  },
})
