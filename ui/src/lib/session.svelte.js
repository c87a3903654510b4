import { pb } from './api.js'

// The signed-in staff member (null when signed out).
export const session = $state({ user: pb.authStore.isValid ? pb.authStore.record : null })

pb.authStore.onChange(() => {
  session.user = pb.authStore.isValid ? pb.authStore.record : null
})

export const isOwner = () => session.user?.role === 'owner' || session.user?.collectionName === '_superusers'

export function logout() {
  pb.realtime.unsubscribe().catch(() => {})
  pb.authStore.clear()
}
