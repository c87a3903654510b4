package inbox

// SettingForTest reads inbox_settings[key] the way the events path does
// (through the cache).
func (m *Module) SettingForTest(key string) map[string]any {
	v := map[string]any{}
	if !m.setting(key, &v) {
		return nil
	}
	return v
}
