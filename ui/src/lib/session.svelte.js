import { pb } from './api.js'

// The signed-in staff member (null when signed out).
export const session = $state({ user: pb.authStore.isValid ? pb.authStore.record : null })

pb.authStore.onChange(() => {
  session.user = pb.authStore.isValid ? pb.authStore.record : null
})

export const isOwner = () => session.user?.role === 'owner' || session.user?.collectionName === '_superusers'

// REFRESH_KEY names the session refresh sent at start-up: its answer saves
// the session again, so signing out cancels it first.
export const REFRESH_KEY = 'session-refresh'

export function logout() {
  pb.cancelRequest(REFRESH_KEY)
  pb.realtime.unsubscribe().catch(() => {})
  pb.authStore.clear()
}
