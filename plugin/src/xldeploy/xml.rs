//! XL Deploy's XML bodies: a small element tree read and written with `quick-xml`, and the
//! few shapes the backend reads (task state, booleans, validation messages, deployed version)
//! or edits (orchestrators and properties of the deployed application).

use std::fmt;

use quick_xml::Reader;
use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::{BytesStart, Event};

/// One XML element with its attributes, text and child elements. XL Deploy's CI XML has no
/// mixed content, so text and children are kept apart.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Element {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

/// A body that is not the XML expected; the message says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct XmlError(pub String);

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(what: impl fmt::Display) -> XmlError {
    XmlError(format!("unreadable XML: {what}"))
}

fn start_element(e: &BytesStart<'_>) -> Result<Element, XmlError> {
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let mut attributes = Vec::new();
    for attr in e.attributes() {
        let attr = attr.map_err(bad)?;
        let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(bad)?
            .into_owned();
        attributes.push((key, value));
    }
    Ok(Element {
        name,
        attributes,
        ..Element::default()
    })
}

/// Parses a whole document into its root element.
pub(crate) fn parse(body: &str) -> Result<Element, XmlError> {
    let mut reader = Reader::from_str(body);
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    loop {
        let event = reader.read_event().map_err(bad)?;
        match event {
            Event::Start(e) => stack.push(start_element(&e)?),
            Event::Empty(e) => {
                let element = start_element(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None if root.is_none() => root = Some(element),
                    None => return Err(bad("more than one root element")),
                }
            }
            Event::End(_) => {
                let mut element = stack.pop().ok_or_else(|| bad("unbalanced end tag"))?;
                if element.text.trim().is_empty() {
                    // Indentation between child elements, not content.
                    element.text.clear();
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None if root.is_none() => root = Some(element),
                    None => return Err(bad("more than one root element")),
                }
            }
            Event::Text(t) => {
                let text = t.decode().map_err(bad)?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err(bad("text outside the root element")),
                }
            }
            Event::CData(t) => {
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(bad)? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().map_err(bad)?;
                        resolve_predefined_entity(&name)
                            .ok_or_else(|| bad(format!("unknown entity &{name};")))?
                            .to_string()
                    }
                };
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(bad("the document ends inside an element"));
    }
    root.ok_or_else(|| bad("no root element"))
}

impl Element {
    pub fn new(name: &str) -> Element {
        Element {
            name: name.to_string(),
            ..Element::default()
        }
    }

    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every element below this one named `name`, in document order.
    pub fn descendants<'a>(&'a self, name: &str, out: &mut Vec<&'a Element>) {
        for child in &self.children {
            if child.name == name {
                out.push(child);
            }
            child.descendants(name, out);
        }
    }

    /// The XML text of this element (no declaration).
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        out.push('<');
        out.push_str(&self.name);
        for (k, v) in &self.attributes {
            out.push_str(&format!(" {k}=\"{}\"", escape(v.as_str())));
        }
        if self.text.is_empty() && self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        out.push_str(&escape(self.text.as_str()));
        for child in &self.children {
            child.write(out);
        }
        out.push_str(&format!("</{}>", self.name));
    }
}

/// `GET /deployit/deployment/exists`: `<boolean>true</boolean>`.
pub(crate) fn parse_boolean(body: &str) -> Result<bool, XmlError> {
    let root = parse(body)?;
    match (root.name.as_str(), root.text.trim()) {
        ("boolean", "true") => Ok(true),
        ("boolean", "false") => Ok(false),
        (name, text) => Err(XmlError(format!(
            "expected <boolean>true|false</boolean>, got <{name}> with `{text}`"
        ))),
    }
}

/// The state of a task from `GET /deployit/task/{id}`: `state2` when present (XL Deploy 4+),
/// else `state`.
pub(crate) fn parse_task_state(body: &str) -> Result<String, XmlError> {
    let root = parse(body)?;
    if root.name != "task" {
        return Err(XmlError(format!("expected <task>, got <{}>", root.name)));
    }
    root.attr("state2")
        .filter(|s| !s.is_empty())
        .or_else(|| root.attr("state"))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| XmlError("<task> has neither a state2 nor a state attribute".into()))
}

/// One `<validation-message ci=".." property=".." level="..">text</validation-message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValidationMessage {
    pub ci: String,
    pub text: String,
}

/// Every validation message in a validated deployment, wherever it is nested.
pub(crate) fn validation_messages(root: &Element) -> Vec<ValidationMessage> {
    let mut found = Vec::new();
    root.descendants("validation-message", &mut found);
    found
        .into_iter()
        .map(|m| ValidationMessage {
            ci: m.attr("ci").unwrap_or_default().to_string(),
            text: m.text.trim().to_string(),
        })
        .collect()
}

/// Checks that a prepare call answered with a `<deployment>` spec.
pub(crate) fn parse_deployment(body: &str) -> Result<Element, XmlError> {
    let root = parse(body)?;
    if root.name != "deployment" {
        return Err(XmlError(format!(
            "expected a <deployment> spec, got <{}>",
            root.name
        )));
    }
    Ok(root)
}

/// The package a deployed application runs: `<version ref="Applications/App/1.0"/>`.
pub(crate) fn deployed_version(body: &str) -> Result<String, XmlError> {
    let root = parse(body)?;
    root.child("version")
        .and_then(|v| v.attr("ref"))
        .map(str::to_string)
        .ok_or_else(|| XmlError(format!("<{}> has no <version ref=...>", root.name)))
}

/// A task id answered as plain text (XL Deploy's `text/plain`) or wrapped in one element
/// without children (`<string>..</string>`). XL Deploy's task ids are UUIDs; anything else
/// (a word from an error page, say) is not taken for one.
pub(crate) fn parse_task_id(body: &str) -> Result<String, XmlError> {
    let trimmed = body.trim();
    let id = if trimmed.starts_with('<') {
        let root = parse(trimmed)?;
        if !root.children.is_empty() {
            return Err(XmlError(format!(
                "expected a task id, got a <{}> document",
                root.name
            )));
        }
        root.text.trim().to_string()
    } else {
        trimmed.to_string()
    };
    if !is_uuid(&id) {
        let shown: String = trimmed.chars().take(80).collect();
        return Err(XmlError(format!(
            "expected a task id (a UUID), got `{shown}`"
        )));
    }
    Ok(id)
}

/// `95223aae-0e6c-45bf-9abe-fed0587a5892`: 8-4-4-4-12 hexadecimal digits.
fn is_uuid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    groups.len() == lengths.len()
        && groups
            .iter()
            .zip(lengths)
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One task of `GET /deployit/tasks/v2/current` (a `TaskWithBlock`): its id, state and the
/// `<metadata>` entries (`application`, `environment`, `environment_id`, `version`, `taskType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ActiveTask {
    pub id: String,
    pub state: String,
    pub metadata: Vec<(String, String)>,
}

impl ActiveTask {
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET /deployit/tasks/v2/current`: `<list><task id=".." state="..">..<metadata>..</metadata>
/// <block ../></task>..</list>`.
pub(crate) fn parse_active_tasks(body: &str) -> Result<Vec<ActiveTask>, XmlError> {
    let root = parse(body)?;
    let tasks: Vec<&Element> = if root.name == "task" {
        vec![&root]
    } else if root.name == "list" {
        root.children.iter().filter(|c| c.name == "task").collect()
    } else {
        return Err(XmlError(format!(
            "expected a <list> of tasks, got <{}>",
            root.name
        )));
    };
    tasks
        .into_iter()
        .map(|task| {
            let id = task
                .attr("id")
                .filter(|id| !id.is_empty())
                .ok_or_else(|| XmlError("a <task> in the list has no id".into()))?;
            let state = task
                .attr("state2")
                .filter(|s| !s.is_empty())
                .or_else(|| task.attr("state"))
                .unwrap_or_default();
            let metadata = task
                .child("metadata")
                .map(|m| {
                    m.children
                        .iter()
                        .map(|e| (e.name.clone(), e.text.trim().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            Ok(ActiveTask {
                id: id.to_string(),
                state: state.to_string(),
                metadata,
            })
        })
        .collect()
}

/// Applies the XL plugin's `orchestrators` and `deployed_application_properties` to the
/// deployed application inside `<application>` of a deployment spec.
pub(crate) fn customize_deployment(
    deployment: &mut Element,
    orchestrators: &[String],
    properties: &[(String, String)],
) -> Result<(), XmlError> {
    if orchestrators.is_empty() && properties.is_empty() {
        return Ok(());
    }
    let deployed = deployment
        .children
        .iter_mut()
        .find(|c| c.name == "application")
        .and_then(|a| a.children.first_mut())
        .ok_or_else(|| XmlError("the deployment has no deployed application".into()))?;
    if !orchestrators.is_empty() {
        let values = orchestrators.iter().map(|o| Element {
            text: o.clone(),
            ..Element::new("value")
        });
        let orchestrator = Element {
            children: values.collect(),
            ..Element::new("orchestrator")
        };
        match deployed
            .children
            .iter_mut()
            .find(|c| c.name == "orchestrator")
        {
            Some(existing) => *existing = orchestrator,
            None => deployed.children.push(orchestrator),
        }
    }
    for (key, value) in properties {
        match deployed.children.iter_mut().find(|c| &c.name == key) {
            Some(existing) => {
                existing.text = value.clone();
                existing.children.clear();
            }
            None => deployed.children.push(Element {
                text: value.clone(),
                ..Element::new(key)
            }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_state_prefers_state2_and_falls_back_to_state() {
        let both = r#"<task id="t1" state="EXECUTING" state2="FAILING" owner="admin"><description>x</description></task>"#;
        assert_eq!(parse_task_state(both).unwrap(), "FAILING");
        let old = r#"<task id="t1" state="EXECUTED"/>"#;
        assert_eq!(parse_task_state(old).unwrap(), "EXECUTED");
        assert!(parse_task_state("<task id=\"t1\"").is_err());
        assert!(parse_task_state("<html>oops</html>").is_err());
    }

    #[test]
    fn validation_messages_are_found_wherever_nested() {
        let body = r#"<deployment id="d" type="UPDATE"><deployeds>
            <jee.War id="Infrastructure/h/web/app"><validation-messages>
              <validation-message ci="Infrastructure/h/web/app" property="contextRoot" level="ERROR">Context root &amp; path are required</validation-message>
            </validation-messages></jee.War></deployeds></deployment>"#;
        let root = parse_deployment(body).unwrap();
        assert_eq!(
            validation_messages(&root),
            vec![ValidationMessage {
                ci: "Infrastructure/h/web/app".into(),
                text: "Context root & path are required".into()
            }]
        );
    }

    const ID: &str = "95223aae-0e6c-45bf-9abe-fed0587a5892";

    #[test]
    fn task_ids_are_plain_text_and_error_pages_are_refused() {
        assert_eq!(parse_task_id(&format!(" {ID}\n")).unwrap(), ID);
        assert_eq!(
            parse_task_id(&format!("<string>{ID}</string>")).unwrap(),
            ID
        );
        assert!(parse_task_id("<html><body>Error</body></html>").is_err());
        assert!(parse_task_id("<h1>maintenance</h1>").is_err());
        assert!(parse_task_id("maintenance").is_err());
        assert!(parse_task_id("95223aae-0e6c-45bf-9abe-fed0587a589").is_err());
        assert!(parse_task_id("").is_err());
    }

    #[test]
    fn active_tasks_carry_their_metadata() {
        let body = format!(
            r#"<list><task id="{ID}" failures="0" owner="admin" state="PENDING">
              <description>Update of Environments/Prod/PetPortal</description>
              <metadata><application>PetPortal</application><environment>Prod</environment>
                <taskType>UPGRADE</taskType><environment_id>Environments/Prod</environment_id>
                <version>2.2</version></metadata>
              <block id="0" state="PENDING" description="Deployment" root="true"/></task></list>"#
        );
        let tasks = parse_active_tasks(&body).unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].id, ID);
        assert_eq!(tasks[0].state, "PENDING");
        assert_eq!(
            tasks[0].metadata("environment_id"),
            Some("Environments/Prod")
        );
        assert_eq!(tasks[0].metadata("taskType"), Some("UPGRADE"));
        assert_eq!(parse_active_tasks("<list/>").unwrap(), vec![]);
        assert!(parse_active_tasks("<html><body>x</body></html>").is_err());
    }

    #[test]
    fn orchestrators_and_properties_land_in_the_deployed_application() {
        let body = r#"<deployment id="d" type="INITIAL"><application><udm.DeployedApplication id="Environments/Prod/App"><version ref="Applications/App/1.0"/><orchestrator/></udm.DeployedApplication></application><deployeds/></deployment>"#;
        let mut root = parse_deployment(body).unwrap();
        customize_deployment(
            &mut root,
            &["parallel-by-container".into()],
            &[("undeployDependencies".into(), "true".into())],
        )
        .unwrap();
        let xml = root.to_xml();
        assert!(
            xml.contains("<orchestrator><value>parallel-by-container</value></orchestrator>"),
            "{xml}"
        );
        assert!(
            xml.contains(
                "<undeployDependencies>true</undeployDependencies></udm.DeployedApplication>"
            ),
            "{xml}"
        );
        assert_eq!(parse(&xml).unwrap(), root);
    }

    #[test]
    fn booleans_and_deployed_versions() {
        assert!(parse_boolean("<boolean>true</boolean>").unwrap());
        assert!(!parse_boolean("<boolean>false</boolean>").unwrap());
        assert!(parse_boolean("true").is_err());
        let ci = r#"<udm.DeployedApplication id="Environments/Prod/App"><version ref="Applications/App/1.0"/><environment ref="Environments/Prod"/></udm.DeployedApplication>"#;
        assert_eq!(deployed_version(ci).unwrap(), "Applications/App/1.0");
    }
}
